package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var (
	goodNonce = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, 32)) // 44 chars
	digest32  = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	b64doc    = base64.StdEncoding.EncodeToString([]byte("%PDF-1.7 document"))
)

func TestDecodeAuthRequest(t *testing.T) {
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 96)) // 128 chars
	tooLong := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 99))
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 30)) // 40 chars
	tests := []struct {
		name, body, field string // field "-" = accepted
	}{
		{"minimal", `{"challengeNonce":"` + goodNonce + `"}`, "-"},
		{"all fields", `{"challengeNonce":"` + goodNonce + `","reader":"Virtual PCD 00 00","lang":"en"}`, "-"},
		{"128 chars", `{"challengeNonce":"` + long + `"}`, "-"},
		{"whitespace", " {\n\"challengeNonce\" : \"" + goodNonce + "\" }\n", "-"},
		// Sec21: nonce bounds and form
		{"missing nonce", `{}`, "challengeNonce"},
		{"empty nonce", `{"challengeNonce":""}`, "challengeNonce"},
		{"short nonce", `{"challengeNonce":"` + short + `"}`, "challengeNonce"},
		{"long nonce", `{"challengeNonce":"` + tooLong + `"}`, "challengeNonce"},
		{"not base64", `{"challengeNonce":"` + strings.Repeat("!", 44) + `"}`, "challengeNonce"},
		{"base64url", `{"challengeNonce":"` + strings.Repeat("-_", 22) + `"}`, "challengeNonce"},
		{"line break", `{"challengeNonce":"` + goodNonce[:20] + `\n` + goodNonce[20:] + `"}`, "challengeNonce"},
		{"number", `{"challengeNonce":12}`, "challengeNonce"},
		{"null", `{"challengeNonce":null}`, "challengeNonce"},
		// Sec23: origin in the body is not a field
		{"origin field", `{"challengeNonce":"` + goodNonce + `","origin":"https://portal.test"}`, "origin"},
		// Sec24: PINs
		{"pin", `{"challengeNonce":"` + goodNonce + `","pin":"1234"}`, "pin"},
		{"PIN", `{"PIN":"1234","challengeNonce":"` + goodNonce + `"}`, "PIN"},
		{"userPin", `{"challengeNonce":"` + goodNonce + `","userPin":"1234"}`, "userPin"},
		{"puk", `{"challengeNonce":"` + goodNonce + `","puk":"12345678"}`, "puk"},
		{"pin number", `{"challengeNonce":"` + goodNonce + `","pin":1234}`, "pin"},
		// Sec25: strictness
		{"duplicate", `{"challengeNonce":"` + goodNonce + `","challengeNonce":"` + goodNonce + `"}`, "challengeNonce"},
		{"case variant", `{"ChallengeNonce":"` + goodNonce + `"}`, "ChallengeNonce"},
		{"trailing", `{"challengeNonce":"` + goodNonce + `"} {}`, ""},
		{"trailing garbage", `{"challengeNonce":"` + goodNonce + `"}x`, ""},
		{"array", `[]`, ""},
		{"string", `"x"`, ""},
		{"empty", ``, ""},
		{"nested", `{"challengeNonce":{"a":{"b":[[[[1]]]]}}}`, "challengeNonce"},
		{"deep", strings.Repeat("[", 10000), ""},
		{"bad utf8", "{\"challengeNonce\":\"" + goodNonce + "\",\"lang\":\"\xff\"}", ""},
		{"unterminated", `{"challengeNonce":"` + goodNonce, ""},
		{"trailing comma", `{"challengeNonce":"` + goodNonce + `",}`, ""},
		{"lang", `{"challengeNonce":"` + goodNonce + `","lang":"de"}`, "lang"},
		{"reader control", `{"challengeNonce":"` + goodNonce + `","reader":"a\u0000b"}`, "reader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, p := DecodeAuthRequest([]byte(tc.body))
			if tc.field == "-" {
				if p != nil {
					t.Fatalf("refused: %+v", p)
				}
				if req.ChallengeNonce == "" {
					t.Fatal("empty nonce accepted")
				}
				return
			}
			if p == nil {
				t.Fatalf("accepted %+v", req)
			}
			if p.Code != CodeBadRequest || p.Status != 400 || p.Field != tc.field {
				t.Fatalf("problem = %+v, want bad_request on field %q", p, tc.field)
			}
		})
	}
}

func TestDecodeSignRequest(t *testing.T) {
	big := base64.StdEncoding.EncodeToString(make([]byte, MaxDataToSign+1))
	tests := []struct {
		name, body, field string // field "-" = accepted
		mode              SignMode
	}{
		{"raw", `{"dataToSign":"` + b64doc + `"}`, "-", SignRaw},
		{"raw explicit", `{"dataToSign":"` + b64doc + `","format":"raw","description":"Ordonnance n°42","lang":"fr"}`, "-", SignRaw},
		{"cades document", `{"document":"` + b64doc + `","format":"cades"}`, "-", SignCAdESDoc},
		{"cades digest", `{"documentDigest":"` + digest32 + `","digestAlgorithm":"SHA-256","format":"cades"}`, "-", SignCAdESDigest},
		{"description 200", `{"dataToSign":"` + b64doc + `","description":"` + strings.Repeat("é", 200) + `"}`, "-", SignRaw},
		{"none", `{"format":"cades"}`, "", 0},
		{"two modes", `{"dataToSign":"` + b64doc + `","document":"` + b64doc + `","format":"cades"}`, "", 0},
		{"empty data", `{"dataToSign":""}`, "dataToSign", 0},
		{"raw too big", `{"dataToSign":"` + big + `"}`, "dataToSign", 0},
		{"raw cades format", `{"dataToSign":"` + b64doc + `","format":"cades"}`, "format", 0},
		{"document no format", `{"document":"` + b64doc + `"}`, "format", 0},
		{"document raw format", `{"document":"` + b64doc + `","format":"raw"}`, "format", 0},
		{"document with algorithm", `{"document":"` + b64doc + `","format":"cades","digestAlgorithm":"SHA-256"}`, "digestAlgorithm", 0},
		{"unknown format", `{"document":"` + b64doc + `","format":"xades"}`, "format", 0},
		// Sec22: hash length and algorithm
		{"digest short", `{"documentDigest":"` + base64.StdEncoding.EncodeToString(make([]byte, 20)) + `","digestAlgorithm":"SHA-256","format":"cades"}`, "documentDigest", 0},
		{"digest long", `{"documentDigest":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `","digestAlgorithm":"SHA-256","format":"cades"}`, "documentDigest", 0},
		{"md5", `{"documentDigest":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `","digestAlgorithm":"MD5","format":"cades"}`, "digestAlgorithm", 0},
		{"sha1", `{"documentDigest":"` + base64.StdEncoding.EncodeToString(make([]byte, 20)) + `","digestAlgorithm":"SHA-1","format":"cades"}`, "digestAlgorithm", 0},
		{"sha512", `{"documentDigest":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `","digestAlgorithm":"SHA-512","format":"cades"}`, "digestAlgorithm", 0},
		{"unknown algorithm", `{"documentDigest":"` + digest32 + `","digestAlgorithm":"GOST","format":"cades"}`, "digestAlgorithm", 0},
		{"no algorithm", `{"documentDigest":"` + digest32 + `","format":"cades"}`, "digestAlgorithm", 0},
		{"lowercase algorithm", `{"documentDigest":"` + digest32 + `","digestAlgorithm":"sha-256","format":"cades"}`, "digestAlgorithm", 0},
		{"bad base64", `{"dataToSign":"abc"}`, "dataToSign", 0},
		{"unpadded", `{"dataToSign":"YWJjZA"}`, "dataToSign", 0},
		// Sec24
		{"pin", `{"dataToSign":"` + b64doc + `","pin":"1234"}`, "pin", 0},
		{"Pin_Code", `{"dataToSign":"` + b64doc + `","Pin_Code":"1234"}`, "Pin_Code", 0},
		{"puk", `{"puk":"12345678","dataToSign":"` + b64doc + `"}`, "puk", 0},
		// Sec23
		{"origin field", `{"dataToSign":"` + b64doc + `","origin":"https://portal.test"}`, "origin", 0},
		// description rules (Sec29 input side)
		{"description too long", `{"dataToSign":"` + b64doc + `","description":"` + strings.Repeat("a", 201) + `"}`, "description", 0},
		{"description newline", `{"dataToSign":"` + b64doc + `","description":"a\nb"}`, "description", 0},
		{"description bidi", `{"dataToSign":"` + b64doc + `","description":"a\u202eb"}`, "description", 0},
		{"description zero width", `{"dataToSign":"` + b64doc + `","description":"a\u200bb"}`, "description", 0},
		{"description number", `{"dataToSign":"` + b64doc + `","description":5}`, "description", 0},
		{"duplicate", `{"dataToSign":"` + b64doc + `","dataToSign":"` + b64doc + `"}`, "dataToSign", 0},
		{"extra", `{"dataToSign":"` + b64doc + `","hash":"x"}`, "hash", 0},
		{"trailing", `{"dataToSign":"` + b64doc + `"}{"dataToSign":"` + b64doc + `"}`, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, p := DecodeSignRequest([]byte(tc.body))
			if tc.field == "-" {
				if p != nil {
					t.Fatalf("refused: %+v", p)
				}
				if req.Mode != tc.mode || len(req.Data) == 0 {
					t.Fatalf("req = %+v", req)
				}
				return
			}
			if p == nil {
				t.Fatalf("accepted %+v", req)
			}
			if p.Code != CodeBadRequest || p.Field != tc.field {
				t.Fatalf("problem = %+v, want bad_request on field %q", p, tc.field)
			}
		})
	}
}

// checkDecoded holds the invariants every accepted request must keep.
func checkDecodedSign(t *testing.T, body []byte, req *SignRequest, p *Problem) {
	t.Helper()
	if (req == nil) == (p == nil) {
		t.Fatalf("req %v and problem %v", req, p)
	}
	if p != nil {
		if p.Code != CodeBadRequest || p.Status != 400 || !utf8.ValidString(p.Field) || len(p.Field) > 64 {
			t.Fatalf("bad problem %+v", p)
		}
		return
	}
	if len(req.Data) == 0 || utf8.RuneCountInString(req.Description) > MaxDescriptionLen || hasControl(req.Description) {
		t.Fatalf("invalid request accepted: %+v", req)
	}
	switch req.Mode {
	case SignRaw:
		if len(req.Data) > MaxDataToSign {
			t.Fatal("oversized dataToSign accepted")
		}
	case SignCAdESDigest:
		if len(req.Data) != 32 {
			t.Fatal("digest of wrong size accepted")
		}
	case SignCAdESDoc:
	default:
		t.Fatalf("mode %v", req.Mode)
	}
	// Whatever was accepted must be a JSON object without secret fields.
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("accepted non-JSON %q: %v", body, err)
	}
	for k := range m {
		if isSecretField(k) {
			t.Fatalf("accepted secret field %q", k)
		}
	}
}

func FuzzDecodeSignRequest(f *testing.F) {
	f.Add([]byte(`{"dataToSign":"` + b64doc + `"}`))
	f.Add([]byte(`{"document":"` + b64doc + `","format":"cades","description":"x","reader":"r","lang":"en"}`))
	f.Add([]byte(`{"documentDigest":"` + digest32 + `","digestAlgorithm":"SHA-256","format":"cades"}`))
	f.Add([]byte(`{"dataToSign":"` + b64doc + `","pin":"1234"}`))
	f.Add([]byte(`{"dataToSign":"` + b64doc + `","dataToSign":"` + b64doc + `"}`))
	f.Add([]byte(`{"a":[{"b":null}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := DecodeSignRequest(body)
		checkDecodedSign(t, body, req, p)
	})
}

func FuzzDecodeAuthRequest(f *testing.F) {
	f.Add([]byte(`{"challengeNonce":"` + goodNonce + `"}`))
	f.Add([]byte(`{"challengeNonce":"` + goodNonce + `","reader":"Virtual PCD 00 00","lang":"fr"}`))
	f.Add([]byte(`{"challengeNonce":"` + goodNonce + `","origin":"https://x"}`))
	f.Add([]byte(`{"challengeNonce":"` + goodNonce + `"}` + "\x00"))
	f.Add([]byte(`{"challengeNonce":1e999}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := DecodeAuthRequest(body)
		if (req == nil) == (p == nil) {
			t.Fatalf("req %v and problem %v", req, p)
		}
		if p != nil {
			if p.Code != CodeBadRequest || !utf8.ValidString(p.Field) {
				t.Fatalf("bad problem %+v", p)
			}
			return
		}
		n := req.ChallengeNonce
		if len(n) < MinNonceLen || len(n) > MaxNonceLen {
			t.Fatalf("nonce of %d chars accepted", len(n))
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(n); err != nil {
			t.Fatalf("non-base64 nonce accepted: %q", n)
		}
		if req.Lang != "" && req.Lang != "fr" && req.Lang != "en" {
			t.Fatalf("lang %q accepted", req.Lang)
		}
	})
}
