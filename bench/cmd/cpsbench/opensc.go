package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
)

// digestInfoSHA256 is the DER prefix of a SHA-256 DigestInfo.
var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// opensc holds what the OpenSC runs share.
type opensc struct {
	slot           string
	signID, authID string
	dataPath       string
	diPath         string
	digestInfo     []byte
	env            []string
}

// runTool runs one OpenSC command (2 minutes at most).
func (o *opensc) runTool(ctx context.Context, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = o.env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(se.String()+" "+so.String()))
	}
	return so.String(), se.String(), err
}

func (b *bench) runOpenSC(ctx context.Context) error {
	for _, t := range []string{"pkcs11-tool", "pkcs15-tool"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%w: %s (apt-get install opensc, or --skip-opensc)", errNoOpenSC, t)
		}
	}
	if _, err := os.Stat(b.cfg.module); err != nil {
		return fmt.Errorf("%w: %v", errNoOpenSC, err)
	}
	o := &opensc{dataPath: filepath.Join(b.tmp, "data"), diPath: filepath.Join(b.tmp, "digestinfo")}
	// A private HOME: no OpenSC file cache or user configuration from the
	// machine (OpenSC 0.23 caches nothing by default anyway).
	home := filepath.Join(b.tmp, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	o.env = append(os.Environ(), "HOME="+home)
	sum := sha256.Sum256(b.data)
	o.digestInfo = append(append([]byte{}, digestInfoSHA256...), sum[:]...)
	if err := os.WriteFile(o.dataPath, b.data, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(o.diPath, o.digestInfo, 0o600); err != nil {
		return err
	}
	// Slot and object IDs, as OpenSC names them.
	list, _, err := o.runTool(ctx, "pkcs11-tool", "--module", b.cfg.module, "-L")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`Slot \d+ \((0x[0-9a-f]+)\): ` + regexp.QuoteMeta(b.reader)).FindStringSubmatch(list)
	if m == nil {
		return fmt.Errorf("no PKCS#11 slot for %q in:\n%s", b.reader, list)
	}
	o.slot = m[1]
	certs, _, err := o.runTool(ctx, "pkcs15-tool", "--reader", b.reader, "--list-certificates")
	if err != nil {
		return err
	}
	if o.signID, o.authID, err = certIDs(certs); err != nil {
		return err
	}
	b.logf("OpenSC: %s, slot %s, signature certificate ID %s, authentication %s", b.res.Env.OpenSC, o.slot, o.signID, o.authID)

	coldID := OpResult{Op: opColdID, Tool: toolOpenSC, How: "pkcs15-tool --reader R --list-certificates"}
	oneCert := OpResult{Op: opReadOneCert, Tool: toolOpenSC, How: "pkcs15-tool --reader R --read-certificate ID"}
	auth := OpResult{Op: opAuth, Tool: toolOpenSC, How: "pkcs11-tool --module opensc-pkcs11.so --login --pin PIN --sign -m RSA-PKCS --id AUTH"}
	sign := OpResult{Op: opSign, Tool: toolOpenSC, How: "pkcs11-tool --module opensc-pkcs11.so --login --pin PIN --sign -m SHA256-RSA-PKCS --id SIGN"}
	pin := b.vc.Card().Config().PIN
	authPub, signPub := pubKey(b.authDER), pubKey(b.signDER)

	for i := 0; i < b.cfg.opensc; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Cold identity: binding the card and reading both certificates.
		s, _ := b.measure(func() error {
			out, _, err := o.runTool(ctx, "pkcs15-tool", "--reader", b.reader, "--list-certificates")
			if err == nil && (!strings.Contains(out, o.signID) || !strings.Contains(out, o.authID)) {
				err = fmt.Errorf("--list-certificates lacks a certificate:\n%s", out)
			}
			return err
		})
		coldID.Samples = append(coldID.Samples, s)

		s, _ = b.measure(func() error {
			out, _, err := o.runTool(ctx, "pkcs15-tool", "--reader", b.reader, "--read-certificate", o.signID)
			if err != nil {
				return err
			}
			blk, _ := pem.Decode([]byte(out))
			if blk == nil || !bytes.Equal(blk.Bytes, b.signDER) {
				return fmt.Errorf("--read-certificate: not the card's signature certificate")
			}
			return nil
		})
		oneCert.Samples = append(oneCert.Samples, s)

		sigPath := filepath.Join(b.tmp, "sig-auth")
		_ = os.Remove(sigPath)
		s, recs := b.measure(func() error {
			_, _, err := o.runTool(ctx, "pkcs11-tool", "--module", b.cfg.module, "--slot", o.slot, "--login", "--pin", pin,
				"--sign", "-m", "RSA-PKCS", "--id", o.authID, "-i", o.diPath, "-o", sigPath)
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				return err
			}
			return rsa.VerifyPKCS1v15(authPub, crypto.SHA256, sum256(b.data), sig)
		})
		s.FromPIN = fromFirstVerify(recs)
		auth.Samples = append(auth.Samples, s)

		sigPath = filepath.Join(b.tmp, "sig-sign")
		_ = os.Remove(sigPath)
		s, recs = b.measure(func() error {
			_, stderr, err := o.runTool(ctx, "pkcs11-tool", "--module", b.cfg.module, "--slot", o.slot, "--login", "--pin", pin,
				"--sign", "-m", "SHA256-RSA-PKCS", "--id", o.signID, "-i", o.dataPath, "-o", sigPath)
			if err != nil {
				if strings.Contains(stderr, "CKR_FUNCTION_NOT_SUPPORTED") {
					return errOpenSCNoSign
				}
				return err
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				return err
			}
			return rsa.VerifyPKCS1v15(signPub, crypto.SHA256, sum256(b.data), sig)
		})
		s.FromPIN = fromFirstVerify(recs)
		if !s.OK && s.Err == errOpenSCNoSign.Error() {
			if sentHash(recs) {
				return fmt.Errorf("OpenSC reported CKR_FUNCTION_NOT_SUPPORTED after sending PSO HASH: unexpected")
			}
			s.Projects = projectSignCompletion(len(b.data), b.lat)
		}
		sign.Samples = append(sign.Samples, s)
		b.logf("OpenSC run %d/%d: cold identity %d APDUs %v, auth %d APDUs %v, sign %s %d APDUs %v", i+1, b.cfg.opensc,
			coldID.Samples[i].APDUs, coldID.Samples[i].Wall.Round(time.Millisecond),
			auth.Samples[i].APDUs, auth.Samples[i].Wall.Round(time.Millisecond),
			outcome(s), s.APDUs, s.Wall.Round(time.Millisecond))
	}
	for _, r := range []*OpResult{&coldID, &auth} {
		if r.okCount() != len(r.Samples) {
			return fmt.Errorf("OpenSC %s failed: %s", r.Op, firstErr(r))
		}
	}
	if sign.allFailed() {
		sign.Note = "fails on this OpenSC (0.23, OpenSSL 3 build): C_SignFinal returns CKR_FUNCTION_NOT_SUPPORTED after MSE SET DST, " +
			"before PSO HASH (card-iasecc.c cannot export the intermediate SHA-256 state); the wall time and APDUs are the attempt's, " +
			"the projection adds PSO HASH, PSO CDS and GET RESPONSE priced by the same latency model"
		b.finding("OpenSC cannot sign with the CPS3 signature key (CKR_FUNCTION_NOT_SUPPORTED after %d APDUs): projected figures are used", sign.Samples[0].APDUs)
	}
	coldSign := sign
	coldSign.Op, coldSign.Note = opColdSign, "the pkcs11-tool signature above: each run is cold, it binds the token and reads both certificates first"
	coldAuth := auth
	coldAuth.Op, coldAuth.Note = opColdAuth, "the pkcs11-tool authentication above: each run is cold, it binds the token and reads both certificates first"
	b.res.Ops = append(b.res.Ops, sign, auth, coldID, oneCert, coldSign, coldAuth)
	return nil
}

var errOpenSCNoSign = fmt.Errorf("CKR_FUNCTION_NOT_SUPPORTED")

// sentHash reports whether a PSO HASH went to the card.
func sentHash(recs []harness.APDURecord) bool {
	for _, r := range recs {
		if r.INS == 0x2A && r.P1 == 0x90 && r.P2 == 0xA0 {
			return true
		}
	}
	return false
}

func outcome(s Sample) string {
	if s.OK {
		return "ok"
	}
	return "FAILED (" + s.Err + ")"
}

func firstErr(r *OpResult) string {
	for _, s := range r.Samples {
		if !s.OK {
			return s.Err
		}
	}
	return ""
}

// certIDs finds the PKCS#15 IDs of the signature and authentication
// certificates in `pkcs15-tool --list-certificates` output.
func certIDs(out string) (signID, authID string, err error) {
	var label string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "X.509 Certificate [") {
			label = l
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != "ID" {
			continue
		}
		id := strings.TrimSpace(v)
		switch {
		case strings.Contains(label, "Signature"):
			signID = id
		case strings.Contains(label, "Authentification"), strings.Contains(label, "Authentication"):
			authID = id
		}
	}
	if signID == "" || authID == "" {
		return "", "", fmt.Errorf("certificate IDs not found in:\n%s", out)
	}
	return signID, authID, nil
}

func pubKey(der []byte) *rsa.PublicKey {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err) // the virtual card's own certificates
	}
	return c.PublicKey.(*rsa.PublicKey)
}

func sum256(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
