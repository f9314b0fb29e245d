package i18n

// Keys of the catalogue. Texts with fmt verbs list their arguments in the
// comment.
const (
	ConsentOperation Key = "consent.operation"
)

var catalogue = map[Key]msg{
	ConsentOperation: {
		FR: "utiliser votre carte CPS (lecture de l'identité, authentification, signature)",
		EN: "use your CPS card (reading your identity, authentication, signature)",
	},
}
