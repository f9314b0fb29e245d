package cps

// CPS4Table is every fact the agent relies on about CPS4 cards (NXP
// "ChipDoc" applet, issued by ANS since 2025). They all come from ONE
// source, the ANS Cryptolib CPS 5.2 sources (ansforge/dops-cryptolib commit
// c92279c: libopensc/card-cps4.c, card-cps.c, cards.h, pkcs15-sec.c;
// card-cpx.md §1 and §4.4): no real-card trace and no second
// implementation confirms them. Rows marked [O] are what that source does;
// rows marked [?] are our own choice where the source is silent.
//
// This table is the only place CPS4 facts live: the CPS4 profile (cps4.go)
// and the virtual CPS4 card (internal/card/virtual) both read it, so a
// field report corrects both sides in one edit.
type CPS4Table struct {
	// ATRs are matched exactly (card-cps.c CPS_ATR_LIST, masks all FF): the
	// CPS4, its release candidate, and the release candidate's T=0-only ATR.
	// Recognise tries them before the CPS3 contact mask, which also matches
	// the third one. [O]
	ATRs [][]byte `json:"atrs"`

	// CLA is the class byte of every command: logical channel 1
	// (card-cps4.c CLA_CHANNEL_ONE; the Cryptolib sets card->cla = 01). [O]
	CLA byte `json:"cla"`
	// AppletAID is the ChipDoc applet, selected on the channel with
	// "CLA A4 04 0C 08 <AID>" (_do_reselect_cps4_aid). The same AID names the
	// IAS-ECC root application on a CPS3. [O]
	AppletAID []byte `json:"appletAid"`
	// AppletSelectP2 is the SELECT P2 for the applet: 0C, no FCI. [O]
	AppletSelectP2 byte `json:"appletSelectP2"`
	// ChannelNotSupportedSW is the status of a command on a logical channel
	// that is not open (68 81): the Cryptolib then selects the applet again
	// and retries. [O]
	ChannelNotSupportedSW uint16 `json:"channelNotSupportedSw"`
	// ManageChannelOpen: when SELECT itself answers ChannelNotSupportedSW,
	// open the channel with MANAGE CHANNEL "00 70 00 <n>" (ISO 7816-4) and
	// select again. The Cryptolib never sends MANAGE CHANNEL: it relies on
	// SELECT opening the channel, and its recovery selects the
	// GlobalPlatform ISD A0 00 00 01 51 00 00 on channel 1, then the CPS2ter
	// application on channel 0. The ISO fallback is ours. [?]
	ManageChannelOpen bool `json:"manageChannelOpen"`

	// SerialFID is EF.SN.ICC, selected by FID with the applet current
	// ("CLA A4 00 0C 02 D0 03": the Cryptolib strips 3F00 from 3F00D003 and
	// selects with P1 00; it asks the FCI, we do not need it). [O]
	SerialFID uint16 `json:"serialFid"`
	// SerialSize is EF.SN.ICC's size; the Cryptolib refuses any other. [O]
	SerialSize int `json:"serialSize"`

	// AppDFPath, AuthCertPath and SignCertPath are hex paths from the
	// applet root, without 3F00, selected with "CLA A4 <PathSelectP1> 0C".
	// The Cryptolib reaches the certificates through the PKCS#15
	// application E8 28 BD 08 0F 80 25 00 00 01 FF 00 10 (cps4_get_aid_pkcs15)
	// [O]; the FIDs themselves are in no source: these mirror the CPS3
	// defaults [?]. When a certificate path answers 6A 82 the profile follows
	// ODF (AppDFPath/5031) → CDF.
	AppDFPath    string `json:"appDfPath"`
	AuthCertPath string `json:"authCertPath"`
	SignCertPath string `json:"signCertPath"`
	// PathSelectP1 is 08 (path from the MF, ISO 7816-4). The Cryptolib sends
	// 09 with the MF stripped, and only the last FID once it is in the
	// right DF. [?]
	PathSelectP1 byte `json:"pathSelectP1"`
	// ReadChunk is the READ BINARY Le. The Cryptolib uses OpenSC's default
	// receive size; 0xE7 is the CPS3 value, safe with every reader. [?]
	ReadChunk int `json:"readChunk"`

	// PINRef and PUKRef are the VERIFY P2 of the PIN and the PUK. The
	// Cryptolib takes them from the PKCS#15 AODF, whose content is not in
	// the source: 01 and 02 as on a CPS3. [?]
	PINRef byte `json:"pinRef"`
	PUKRef byte `json:"pukRef"`
	// PINMaxTries is hard-coded to 3 by the Cryptolib (_cps4_get_pin_counter);
	// the tries left come from VERIFY without data: 63 Cx, 69 83 blocked. [O]
	PINMaxTries int `json:"pinMaxTries"`
	// PUKMaxTries: 10, as on a CPS3 (ANS help pages); no CPS4 source. [?]
	PUKMaxTries int `json:"pukMaxTries"`
	// BlockedOn63C0: the Cryptolib's CPS4 PIN code treats 63 C0 as blocked
	// (cps4_pin_cmd). [O]
	BlockedOn63C0 bool `json:"blockedOn63C0"`
	// ChangeP1 is CHANGE REFERENCE DATA's P1: 01, the data field holds the
	// new PIN only, sent after a VERIFY of the current one (cps4_build_pin_apdu
	// drops the old PIN and sets P1 = 1). [O]
	ChangeP1 byte `json:"changeP1"`
	// UnblockP1 and UnblockRefBit: RESET RETRY COUNTER "CLA 2C 03 <PINRef|80>",
	// case 1 (counter only), after the PUK was verified, followed by a CHANGE
	// REFERENCE DATA that sets the new PIN. [O]
	UnblockP1     byte `json:"unblockP1"`
	UnblockRefBit byte `json:"unblockRefBit"`

	// SignMSE is MSE SET for a signature: P1 81, P2 B6, then the data
	// "91 02 <alg> <key|SignKeyHashBit>" (cps4_set_security_env). [O]
	SignMSEP1  byte `json:"signMseP1"`
	SignMSEP2  byte `json:"signMseP2"`
	SignMSETag byte `json:"signMseTag"`
	// SignAlgSHA256 is RSA PKCS#1 v1.5 with SHA-256 (CPSV4_ALG_RSA_SHA_256_PKCS1);
	// SHA-1 is 0A, the PSS variants 15 / 2C (cards.h). PSO CDS then carries
	// the 32-byte hash as data: the host hashes the whole message, the card
	// builds the DigestInfo. [O]
	SignAlgSHA256 byte `json:"signAlgSha256"`
	// SignKeyHashBit is OR-ed into the key reference ("Key Id with MSB for
	// signing hash data"). [O]
	SignKeyHashBit byte `json:"signKeyHashBit"`
	// SignKeyRef is the non-repudiation key. The Cryptolib reads it from the
	// PrKDF, whose content is not in the source: this value is a guess next
	// to the authentication key's 0x20 — the first fact to check on a real
	// card (card-cpx.md §8 item 6). [?]
	SignKeyRef byte `json:"signKeyRef"`

	// AuthMSE is MSE SET for the authentication key: P1 41, P2 B8 (CT), data
	// "83 01 <AuthKeyRef>". There is no INTERNAL AUTHENTICATE: the host
	// builds the PKCS#1 v1.5 type-1 block and sends it with PSO DECIPHER
	// "CLA 2A 80 86" without the 81 padding indicator, with command chaining;
	// the raw RSA result is the signature (cps4_internal_authenticate). [O]
	AuthMSEP1  byte `json:"authMseP1"`
	AuthMSEP2  byte `json:"authMseP2"`
	AuthMSETag byte `json:"authMseTag"`
	// AuthKeyRef is CPS4_AUTH_PRIV_KEY_ID. [O]
	AuthKeyRef byte `json:"authKeyRef"`
	// ModulusBits is the only RSA size the Cryptolib registers for a CPS4
	// (_sc_card_add_rsa_alg(card, 2048, …)); the profile uses the
	// authentication certificate's size when the engine knows it. [O]
	ModulusBits int `json:"modulusBits"`
}

// CPS4Facts is the CPS4 table. See CPS4Table for the source of each row.
var CPS4Facts = CPS4Table{
	ATRs: [][]byte{
		{0x3B, 0x9B, 0x18, 0x80, 0x01, 0x00, 0x12, 0x25, 0x00, 0x64, 0x80, 0x04, 0x01, 0x00, 0x00, 0x90, 0x44},
		{0x3B, 0x9B, 0x18, 0x80, 0x01, 0x00, 0x12, 0x25, 0x00, 0x64, 0x80, 0x00, 0x04, 0x01, 0x00, 0x90, 0x44},
		{0x3B, 0xDC, 0x18, 0xFF, 0x00, 0x00, 0x12, 0x25, 0x00, 0x64, 0x80, 0x00, 0x04, 0x01, 0x00, 0x90, 0x00},
	},
	CLA:                   0x01,
	AppletAID:             []byte{0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x01, 0x00},
	AppletSelectP2:        0x0C,
	ChannelNotSupportedSW: 0x6881,
	ManageChannelOpen:     true,

	SerialFID:  0xD003,
	SerialSize: 12,

	AppDFPath:    "0001",
	AuthCertPath: "0001A001",
	SignCertPath: "0001A002",
	PathSelectP1: 0x08,
	ReadChunk:    0xE7,

	PINRef:        0x01,
	PUKRef:        0x02,
	PINMaxTries:   3,
	PUKMaxTries:   10,
	BlockedOn63C0: true,
	ChangeP1:      0x01,
	UnblockP1:     0x03,
	UnblockRefBit: 0x80,

	SignMSEP1:      0x81,
	SignMSEP2:      0xB6,
	SignMSETag:     0x91,
	SignAlgSHA256:  0x28,
	SignKeyHashBit: 0x80,
	SignKeyRef:     0x21,

	AuthMSEP1:   0x41,
	AuthMSEP2:   0xB8,
	AuthMSETag:  0x83,
	AuthKeyRef:  0x20,
	ModulusBits: 2048,
}
