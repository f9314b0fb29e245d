package cps

// CPS3CLTable holds the facts about the contactless interface of a CPS3
// that the agent needs to read the holder's identity there. Signing,
// authentication and PIN management are refused over contactless (the
// Cryptolib: "no signature allowed contactless"; card-cpx.md §1), before
// any APDU.
type CPS3CLTable struct {
	// AppAID is the contactless PKCS#15 application "CPX IAS CL" (OSC:dir.c,
	// OSC#2217). [C]
	AppAID []byte `json:"appAid"`
	// AppDFPath is its DF: 3F00/0002 appears only in an OpenSC example
	// ("cd 0002", commit fcd2e66). [?]
	AppDFPath string `json:"appDfPath"`
	// AuthCertPath and SignCertPath: the certificate EFs in that DF, by
	// analogy with the contact application; when they answer 6A 82 the
	// profile follows the application's ODF → CDF. [?]
	AuthCertPath string `json:"authCertPath"`
	SignCertPath string `json:"signCertPath"`
}

// CPS3CLFacts is the contactless CPS3 table.
var CPS3CLFacts = CPS3CLTable{
	AppAID:       []byte{0xE8, 0x28, 0xBD, 0x08, 0x0F, 0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x00, 0x20},
	AppDFPath:    "3F000002",
	AuthCertPath: "3F000002A001",
	SignCertPath: "3F000002A002",
}
