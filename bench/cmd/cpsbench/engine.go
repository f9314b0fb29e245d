package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
)

// runEngine drives the card engine in-process over PC/SC: the same code
// the agent runs, without HTTPS or a PIN dialog. Its own APDU counts
// (card.Signature.APDUs) are checked against the card's.
func (b *bench) runEngine(ctx context.Context) error {
	tr := pcsc.New(pcsc.Options{})
	defer tr.Close()
	pin := []byte(b.vc.Card().Config().PIN)
	pinFn := func(context.Context, card.PINRequest) ([]byte, error) { return append([]byte(nil), pin...), nil }
	authData, authHash := api.AuthenticationData("https://portal.test", "engine benchmark nonce, 44 characters long!")
	authPub, signPub := pubKey(b.authDER), pubKey(b.signDER)
	dataHash := sum256(b.data)

	sign := OpResult{Op: opSign, Tool: toolEngine, How: "card.Engine.Sign (PC/SC, certificates cached)"}
	auth := OpResult{Op: opAuth, Tool: toolEngine, How: "card.Engine.Authenticate (PC/SC, certificates cached)"}
	coldID := OpResult{Op: opColdID, Tool: toolEngine, How: "new card.Engine, Card()"}
	coldSign := OpResult{Op: opColdSign, Tool: toolEngine, How: "new card.Engine, Card() then Sign()"}
	coldAuth := OpResult{Op: opColdAuth, Tool: toolEngine, How: "new card.Engine, Card() then Authenticate()"}

	engineSample := func(s Sample, sig *card.Signature) Sample {
		if sig != nil {
			s.Engine = &EngineSide{APDUs: sig.APDUs, CardTime: sig.CardTime}
			if int64(sig.APDUs) != s.APDUs {
				b.finding("engine reported %d APDUs for an operation, the card counted %d", sig.APDUs, s.APDUs)
			}
		}
		return s
	}
	doSign := func(e *card.Engine) (*card.Signature, error) {
		sig, err := e.Sign(ctx, b.reader, b.data, pinFn)
		if err == nil {
			err = rsa.VerifyPKCS1v15(signPub, crypto.SHA256, dataHash, sig.Value)
		}
		return sig, err
	}
	doAuth := func(e *card.Engine) (*card.Signature, error) {
		sig, err := e.Authenticate(ctx, b.reader, authData, pinFn)
		if err == nil {
			err = rsa.VerifyPKCS1v15(authPub, crypto.SHA256, authHash, sig.Value)
		}
		return sig, err
	}
	doCard := func(e *card.Engine) error {
		d, err := e.Card(ctx, b.reader)
		if err == nil && (d.SignCert == nil || d.AuthCert == nil || d.Identity == nil) {
			err = fmt.Errorf("identity incomplete: %+v", d)
		}
		return err
	}
	newEngine := func() *card.Engine { return card.New(tr, card.Options{NoPreRead: true}) }

	warm := newEngine()
	if err := doCard(warm); err != nil {
		return err
	}
	for i := 0; i < b.cfg.n; i++ {
		var sig *card.Signature
		s, _ := b.measure(func() (err error) { sig, err = doSign(warm); return err })
		sign.Samples = append(sign.Samples, engineSample(s, sig))
		s, _ = b.measure(func() (err error) { sig, err = doAuth(warm); return err })
		auth.Samples = append(auth.Samples, engineSample(s, sig))
	}
	for i := 0; i < b.cfg.cold; i++ {
		s, _ := b.measure(func() error { return doCard(newEngine()) })
		coldID.Samples = append(coldID.Samples, s)
		s, _ = b.measure(func() error {
			e := newEngine()
			if err := doCard(e); err != nil {
				return err
			}
			_, err := doSign(e)
			return err
		})
		coldSign.Samples = append(coldSign.Samples, s)
		s, _ = b.measure(func() error {
			e := newEngine()
			if err := doCard(e); err != nil {
				return err
			}
			_, err := doAuth(e)
			return err
		})
		coldAuth.Samples = append(coldAuth.Samples, s)
	}
	for _, r := range []*OpResult{&sign, &auth, &coldID, &coldSign, &coldAuth} {
		if r.okCount() != len(r.Samples) {
			return fmt.Errorf("engine %s failed: %s", r.Op, firstErr(r))
		}
		p50, _, _ := r.wallPercentiles()
		a, _ := r.medianAPDUs()
		b.logf("engine %-16s %3d APDUs, p50 %v", r.Op, a, p50.Round(time.Millisecond))
	}
	b.res.Ops = append(b.res.Ops, sign, auth, coldID, coldSign, coldAuth)
	return nil
}
