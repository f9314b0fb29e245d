package cpsid

// Luhn reports whether s is a non-empty string of ASCII digits whose last
// digit is the Luhn (mod 10) check digit of the others. RPPS numbers (11
// digits), SIREN, SIRET and FINESS use it (identity.md §4).
func Luhn(s string) bool {
	if s == "" {
		return false
	}
	sum := 0
	for i := 0; i < len(s); i++ {
		c := s[len(s)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
