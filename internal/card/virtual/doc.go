// Package virtual is a virtual CPS3 card: an in-process APDU processor that
// behaves like a French health-professional card (IAS-ECC, CPS3 contact
// interface) closely enough for OpenSC's own tools and for the agent's card
// engine, plus a client for the vsmartcard vpcd driver so pcscd sees it in a
// "Virtual PCD" reader.
//
// Config.Model turns it into another card the agent must handle (model.go):
// a CPS4 (NXP ChipDoc applet on logical channel 1, every value from
// cps.CPS4Facts; cps4.go), the contactless interface of a CPS3 (identity
// only), or an unrelated ISO card that the agent must leave alone.
//
// It is a product feature (demos, CI, field support), not a test double:
// everything it answers follows /work/shared/docs/card-cpx.md, and every
// behaviour that document marks [?] is a field of [Behaviour], so a test or a
// field report can flip one fact without touching code.
//
// # Card content
//
//	3F00 MF (root AID 80 25 00 00 01 FF 01 00)
//	├─ 2F01 EF.ATR     57 bytes, SFI 1D (card-cpx.md §5.3, leading 80)
//	├─ 2F00 EF.DIR     101 bytes, SFI 1E ("CPX IAS", "CPX IAS CL")
//	├─ D003 EF.SN.ICC  12 bytes, SFI 1C (5A 0A 80 25 00 00 01 + 5 BCD bytes)
//	├─ CHV 1 (PIN, 3 tries) and CHV 2 (PUK, 10 tries, 100 uses); SE #1, SE #3
//	└─ 0001 DF, name E8 28 BD 08 0F 80 25 00 00 01 FF 00 10 (PKCS#15 "CPX IAS")
//	   ├─ 5031 ODF, 5032 TokenInfo, 4401 AODF, 4402 PrKDF, 4404 CDF
//	   ├─ A001 authentication certificate, A002 signature certificate
//	   ├─ 7001 contact-only marker file (content undocumented: 16 zero bytes)
//	   └─ RSA-2048 keys: SDO ref 1 = key 0x81 CPS_PRIV_SIG (PSO CDS),
//	      SDO ref 2 = key 0x82 CPS_PRIV_AUT (INTERNAL AUTHENTICATE, DECIPHER)
//
// The AODF/PrKDF/CDF FIDs (4401, 4402, 4404) are not known for a real card;
// they are reached through the ODF, as on a real card.
//
// # Decisions on unconfirmed behaviour
//
// The defaults of [Behaviour] are:
//   - the VERIFY that exhausts the PIN counter answers 63 C0 (then 69 83);
//   - PIN/PUK stored as ASCII digits without padding; the CHV public data
//     (7F41) reports min = max = 4 (PUK 8), so OpenSC pads with FF to 4 bytes,
//     which changes nothing;
//   - a VERIFY whose data length is not the PIN length answers 6A 80 and
//     consumes no try (the comparison is never attempted; ISO 7816-4 "incorrect
//     data field");
//   - CHANGE REFERENCE DATA needs the PIN verified first (IAS-ECC, §3), and a
//     wrong old PIN in it counts as a wrong PIN;
//   - RESET RETRY COUNTER (P1 02 new PIN, or 03 reset only) needs the PUK
//     verified; it consumes one PUK use and the PUK verification;
//   - the verified state is lost on Reset and PowerOff, not when the
//     application is selected again;
//   - READ BINARY past the end returns the bytes left with 62 82;
//   - PSO HASH accepts an empty tail (80 00); PSO CDS accepts a bare 32-byte
//     hash as data (the Cryptolib path);
//   - the transport is T=0: every command with response data, other than
//     READ BINARY, GET CHALLENGE and GET RESPONSE, answers 61 xx;
//   - the RSA key DOCP reports its size in bytes (01 00), which is what
//     OpenSC's PSO DST path expects;
//   - VERIFY, CHANGE and RESET RETRY COUNTER name the PIN and PUK with
//     P2 01 / 02 (LocalCHVRefs: 81 / 82); CHANGE takes P1 00 with old‖new
//     (ChangeP1 01: new value only); VERIFY works in any DF (VerifyNeedsMF:
//     MF only); the application DF is 3F00/0001 (AppDFFID). Each of these is
//     a quirk of the agent (cps.Quirks, the quirks file), and
//     Behaviour.AgentQuirks gives the quirks that match a card.
//
// # Notes from running OpenSC 0.23 (Debian 12) against the card
//
//   - EF.DIR lists the contactless application first: OpenSC reorders
//     known applications with a swap that binds the first record only when
//     it is the contactless one (see buildEFDIR).
//   - OpenSC selects the MF with "00 A4 02 04 02 3F 00" and asks the PIN
//     status with the T=0 header "00 20 00 01 00"; both are accepted.
//   - OpenSC built with OpenSSL 3 cannot sign with key 0x81: it stops after
//     MSE DST, before PSO HASH (iasecc_qsign_data_* are compiled out). Key
//     0x82 works through INTERNAL AUTHENTICATE and PSO DECIPHER.
//   - "opensc-tool -n" prints the driver name "IAS-ECC"; the "IAS/ECC CPx"
//     ATR entry only shows in OpenSC's debug log.
//
// # vpcd
//
// ServeVPCD and VPCDClient connect a Card to the vsmartcard driver; the
// client can redial after a pcscd restart and inject faults (BeforeAPDU,
// Remove, Insert). Debian's driver sends each frame as two TCP segments;
// without TCP_QUICKACK on the card side every APDU waits about 40 ms for a
// delayed ACK (measured: 44 ms per APDU without, 0.2 ms with).
//
// # Trace
//
// Config.Trace receives "<RFC 3339 UTC time> > <command>" and
// "<time> < <response>" lines, and "<time> # <event>" for power, reset and
// vpcd events. PIN data (apdu.Redact), PSO HASH data (document bytes) and
// deciphered data are replaced by "**".
//
// Status words for misuse: unknown INS 6D 00, bad CLA 6E 00 (68 81 for a
// logical channel, 68 82 for secure messaging), malformed or truncated APDU
// 67 00, SELECT with P2 00 6A 86 (except the root AID, which answers a bare
// 90 00 like the real card), absent file 6A 82, crypto without the PIN 69 82,
// PSO without its MSE or with the wrong key 69 85, unknown key or key used
// outside DF 0001 6A 88.
package virtual
