package card

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// opStats accumulates the cost of one operation over its transactions.
type opStats struct {
	apdus    int
	cardTime time.Duration
}

func (st *opStats) add(tx *txn) {
	if tx == nil {
		return
	}
	st.apdus += int(tx.ch.Count())
	st.cardTime += tx.meter.elapsed
}

// Card returns the holder identity and both certificates, read without a
// PIN. Certificates are cached per card serial while the card stays in: a
// warm read costs no APDU; a cold read costs the serial read (CPS3: SELECT
// 3F00/D003 + READ BINARY, 2 APDUs; CPS4: the applet SELECT first, 3) and,
// per certificate, one SELECT and ⌈size/231⌉ READ BINARY. While another operation holds the
// reader, the identity already read for the card in place is returned
// (FromCache) instead of ErrBusy.
//
// reader names a reader, or a card by its serial number (see resolve);
// the same holds for every operation below.
func (e *Engine) Card(ctx context.Context, reader string) (*CardData, error) {
	tg, err := e.resolve(ctx, reader)
	if err != nil {
		return nil, err
	}
	name := tg.reader
	// An identity read is short and asks no PIN: it takes the reader as a
	// waitable operation, so a signature requested meanwhile waits for it
	// instead of failing with ErrBusy (regression: test/soak
	// TestRegressionSignNotBusyDuringIdentityRead).
	release, err := e.acquire(ctx, name, true)
	if errors.Is(err, ErrBusy) {
		if d := e.cachedFor(name); d != nil && (tg.serial == "" || d.Serial == tg.serial) {
			return d, nil
		}
	}
	if err != nil {
		return nil, err
	}
	defer release()
	d, n, err := e.readIdentity(ctx, name, tg.serial)
	if err != nil {
		return nil, err
	}
	e.log.Debug("identity read", zap.String("reader", name), zap.String("serial", d.Serial), zap.Int("apdus", n),
		zap.Bool("fromCache", d.FromCache))
	return d, nil
}

// cachedFor returns the identity handed out for the card now in reader, if
// the monitor has not seen it leave since.
func (e *Engine) cachedFor(name string) *CardData {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.slots[name]
	if s == nil || s.reported == "" || !s.present {
		return nil
	}
	en := e.cache.get(s.reported)
	if en == nil {
		return nil
	}
	return en.data(name, s.atr, true)
}

// readIdentity runs the identity read in one transaction; the caller holds
// the reader. It returns the APDU count. When want is set, a card with
// another serial gives ErrCardMismatch before its certificates are read.
func (e *Engine) readIdentity(ctx context.Context, name, want string) (*CardData, int, error) {
	var st opStats
	tx, err := e.begin(ctx, name)
	if err != nil {
		e.cardGone(name, err)
		return nil, 0, err
	}
	defer func() { tx.end() }()
	// The serial read on this insertion still holds: PC/SC reports a card
	// taken out (or reset) in between when the transaction begins, and the
	// transport counts a new insertion. A warm read then costs no APDU.
	serial := ""
	e.mu.Lock()
	if s := e.slots[name]; s != nil && s.serial != "" && s.insertion == tx.sess.Insertion() {
		serial = s.serial
	}
	e.mu.Unlock()
	if serial == "" {
		if serial, err = tx.profile.ReadSerial(tx.ch); err != nil {
			st.add(tx)
			err = translate(err)
			e.cardGone(name, err)
			return nil, st.apdus, err
		}
	}
	if want != "" && serial != want {
		st.add(tx)
		e.mismatch(name)
		return nil, st.apdus, fmt.Errorf("%w: reader %q holds card %s, not %s", ErrCardMismatch, name, serial, want)
	}
	en, fromCache, err := e.certificates(tx, serial)
	st.add(tx)
	if err != nil {
		e.cardGone(name, err)
		return nil, st.apdus, err
	}
	e.mu.Lock()
	s := e.slotLocked(name)
	s.serial, s.insertion, s.reported = serial, tx.sess.Insertion(), serial
	e.mu.Unlock()
	return en.data(name, tx.sess.ATR(), fromCache), st.apdus, nil
}

// certificates returns the cache entry for serial, reading the
// certificates in tx when it is missing.
func (e *Engine) certificates(tx *txn, serial string) (*certEntry, bool, error) {
	e.mu.Lock()
	en := e.cache.get(serial)
	e.mu.Unlock()
	if en != nil {
		return en, true, nil
	}
	authDER, signDER, err := tx.profile.ReadCertificates(tx.ch)
	if err != nil {
		return nil, false, translate(err)
	}
	auth, err := x509.ParseCertificate(authDER)
	if err != nil {
		return nil, false, fmt.Errorf("%w: authentication certificate: %w", ErrCardFailure, err)
	}
	sign, err := x509.ParseCertificate(signDER)
	if err != nil {
		return nil, false, fmt.Errorf("%w: signature certificate: %w", ErrCardFailure, err)
	}
	readAt := e.now()
	id, err := cpsid.FromCertificates(auth, sign, cpsid.CardInfo{SerialNumber: serial, Generation: tx.ctype.Generation, ReadAt: readAt})
	if err != nil {
		// The certificates are still usable for signatures; report the
		// identity problem through the log and CardData.Identity == nil.
		e.log.Warn("identity not built from the card certificates", zap.String("serial", serial), zap.Error(err))
		id = nil
	}
	en = &certEntry{serial: serial, generation: tx.ctype.Generation, auth: auth, sign: sign, identity: id, readAt: readAt}
	e.mu.Lock()
	e.cache.put(en)
	e.mu.Unlock()
	return en, false, nil
}

// cardGone forgets the card of reader after an error that says it left.
func (e *Engine) cardGone(name string, err error) {
	if !errors.Is(err, ErrCardRemoved) && !errors.Is(err, ErrNoCard) {
		return
	}
	e.mu.Lock()
	if s := e.slots[name]; s != nil {
		e.forgetLocked(s)
	}
	e.mu.Unlock()
}

// PINStatus reads the PIN counter (VERIFY without data, no try consumed)
// and the PUK counter (GET DATA of its DOCP with the MF current).
//
// Over the contactless interface it fails with ErrNotPermitted before any
// APDU.
func (e *Engine) PINStatus(ctx context.Context, reader string) (PINStatus, error) {
	tg, err := e.resolve(ctx, reader)
	if err != nil {
		return PINStatus{}, err
	}
	name := tg.reader
	// A short read, like the identity's: a request arriving meanwhile waits
	// for it rather than being told the card is busy.
	release, err := e.acquire(ctx, name, true)
	if err != nil {
		return PINStatus{}, err
	}
	defer release()
	tx, err := e.begin(ctx, name)
	if err != nil {
		e.cardGone(name, err)
		return PINStatus{}, err
	}
	defer tx.end()
	if tx.ctype.Contactless {
		return PINStatus{}, fmt.Errorf("%w: PIN status over the contactless interface", ErrNotPermitted)
	}
	if tg.serial != "" {
		if err := e.confirmSerial(tx, name, tg.serial); err != nil {
			e.cardGone(name, err)
			return PINStatus{}, err
		}
	}
	pin, err := tx.profile.PINStatus(tx.ch)
	if err != nil {
		err = translate(err)
		e.cardGone(name, err)
		return PINStatus{}, err
	}
	puk, err := tx.profile.PUKStatus(tx.ch)
	if err != nil {
		err = translate(err)
		e.cardGone(name, err)
		return PINStatus{}, err
	}
	return PINStatus{TriesLeft: pin.TriesLeft, MaxTries: pin.MaxTries, Blocked: pin.Blocked,
		PUKTriesLeft: puk.TriesLeft, PUKBlocked: puk.Blocked}, nil
}

// Authenticate signs data (≤ 102 bytes, e.g. a DigestInfo) with the
// authentication key 0x82: PKCS#1 v1.5 padding by the card, no hashing.
func (e *Engine) Authenticate(ctx context.Context, reader string, data []byte, pin PINFunc) (*Signature, error) {
	if len(data) == 0 || len(data) > cps.MaxAuthInput {
		return nil, fmt.Errorf("%w: %d bytes to authenticate (1..%d)", ErrInvalidInput, len(data), cps.MaxAuthInput)
	}
	data = append([]byte(nil), data...)
	var value []byte
	res, err := e.pinOperation(ctx, reader, "authenticate", pin, []PINKind{KindPIN}, func(tx *txn, secrets [][]byte) error {
		var err error
		value, err = tx.profile.Authenticate(tx.ch, secrets[0], data)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Signature{Value: value, Algorithm: AlgRSAPKCS1, Certificate: res.entry.auth, Serial: res.serial,
		APDUs: res.stats.apdus, CardTime: res.stats.cardTime}, nil
}

// Sign signs toBeSigned with the non-repudiation key 0x81, RSA PKCS#1 v1.5
// with SHA-256; the host hashes all but the last 1..64 bytes and the card
// finishes the hash of the whole message.
func (e *Engine) Sign(ctx context.Context, reader string, toBeSigned []byte, pin PINFunc) (*Signature, error) {
	msg := append([]byte(nil), toBeSigned...)
	var value []byte
	res, err := e.pinOperation(ctx, reader, "sign", pin, []PINKind{KindPIN}, func(tx *txn, secrets [][]byte) error {
		var err error
		value, err = tx.profile.Sign(tx.ch, secrets[0], msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Signature{Value: value, Algorithm: AlgRS256, Certificate: res.entry.sign, Serial: res.serial,
		APDUs: res.stats.apdus, CardTime: res.stats.cardTime}, nil
}

// ChangePIN asks the current PIN (KindPIN) then the new one (KindNewPIN),
// VERIFYs the current PIN and replaces it.
func (e *Engine) ChangePIN(ctx context.Context, reader string, pin PINFunc) error {
	_, err := e.pinOperation(ctx, reader, "change-pin", pin, []PINKind{KindPIN, KindNewPIN}, func(tx *txn, secrets [][]byte) error {
		return tx.profile.ChangePIN(tx.ch, secrets[0], secrets[1])
	})
	return err
}

// Unblock asks the PUK (KindPUK) then a new PIN (KindNewPIN), VERIFYs the
// PUK and resets the PIN's counter with the new PIN. Each unblock uses one
// of the PUK's 100 uses.
func (e *Engine) Unblock(ctx context.Context, reader string, pin PINFunc) error {
	_, err := e.pinOperation(ctx, reader, "unblock", pin, []PINKind{KindPUK, KindNewPIN}, func(tx *txn, secrets [][]byte) error {
		return tx.profile.Unblock(tx.ch, secrets[0], secrets[1])
	})
	return err
}

type opResult struct {
	serial string
	entry  *certEntry
	stats  opStats
	// pinBefore is the PIN counter read in Tx1 (nil: not read, or the
	// operation starts with the PUK); verified is set once the operation's
	// VERIFYs were sent.
	pinBefore *cps.CHVState
	verified  bool
}

// pinAfter is the PIN counter as the operation left it, when known without
// another APDU (see Event.PIN).
func (r *opResult) pinAfter(err error) *PINCounter {
	if r.pinBefore == nil {
		return nil
	}
	before := r.pinBefore
	var wrong *WrongPINError
	switch {
	case !r.verified:
		// No VERIFY with data was sent: the counter is what Tx1 read.
		return &PINCounter{TriesLeft: before.TriesLeft, MaxTries: before.MaxTries, Blocked: before.Blocked}
	case err == nil:
		return &PINCounter{TriesLeft: before.MaxTries, MaxTries: before.MaxTries}
	case errors.As(err, &wrong) && wrong.Kind == KindPIN && wrong.TriesLeft >= 0:
		return &PINCounter{TriesLeft: wrong.TriesLeft, MaxTries: before.MaxTries, Blocked: wrong.TriesLeft == 0}
	case errors.Is(err, ErrPINBlocked):
		return &PINCounter{TriesLeft: 0, MaxTries: before.MaxTries, Blocked: true}
	}
	return nil
}

// pinOperation runs a PIN-protected operation in two transactions so that
// no PC/SC transaction is held while the user types:
//
//	Tx1: serial (only if this insertion's serial is unknown), certificates
//	     (only if not cached), counter status (VERIFY without data, or the
//	     PUK DOCP); blocked → error, no prompt.
//	     — PIN prompt(s), outside any transaction —
//	Tx2: if the card left in between (new insertion), re-read the serial:
//	     another serial → ErrCardMismatch before any VERIFY. Then run
//	     (exactly one VERIFY per secret). The transaction ends with a card
//	     reset, clearing the verified state.
func (e *Engine) pinOperation(ctx context.Context, reader, op string, pinFn PINFunc, kinds []PINKind,
	run func(tx *txn, secrets [][]byte) error) (res *opResult, err error) {
	if pinFn == nil {
		return nil, fmt.Errorf("%w: no PIN callback", ErrInvalidInput)
	}
	tg, err := e.resolve(ctx, reader)
	if err != nil {
		return nil, err
	}
	name := tg.reader
	release, err := e.acquire(ctx, name, false)
	if err != nil {
		return nil, err
	}
	defer release()
	res = &opResult{}
	start := time.Now()
	e.emit(Event{Type: EventOperationStarted, Reader: name, Operation: op})
	defer func() {
		outcome := "ok"
		if err != nil {
			outcome = err.Error()
			e.cardGone(name, err)
		}
		e.emit(Event{Type: EventOperationEnded, Reader: name, Serial: res.serial, Operation: op, Outcome: outcome,
			PIN: res.pinAfter(err)})
		fields := []zap.Field{zap.String("op", op), zap.String("reader", name), zap.String("serial", res.serial),
			zap.Int("apdus", res.stats.apdus), zap.Duration("cardTime", res.stats.cardTime), zap.Duration("took", time.Since(start))}
		if err != nil {
			e.log.Info("card operation failed", append(fields, zap.Error(err))...)
		} else {
			e.log.Info("card operation", fields...)
		}
	}()

	// Tx1: who is the card, what does the counter say.
	tx1, err := e.begin(ctx, name)
	if err != nil {
		return res, err
	}
	if tx1.ctype.Contactless {
		// The contactless interface serves the identity only: the Cryptolib
		// allows no signature there (card-cpx.md §1), and the agent does no
		// authentication or PIN management there either. Refuse before any
		// APDU.
		tx1.end()
		return res, fmt.Errorf("%w: %s over the contactless interface", ErrNotPermitted, op)
	}
	state, insertion, err := e.prepare(tx1, name, kinds[0], res, tg.serial)
	tx1.end()
	res.stats.add(tx1)
	if err != nil {
		return res, err
	}

	if kinds[0] == KindPIN {
		res.pinBefore = &state
	}
	if state.Blocked {
		if kinds[0] == KindPUK {
			return res, ErrPUKBlocked
		}
		return res, ErrPINBlocked
	}

	// Prompts: exactly one call per secret, each checked before the next.
	secrets := make([][]byte, 0, len(kinds))
	defer func() {
		for _, s := range secrets {
			clear(s)
		}
	}()
	for i, k := range kinds {
		req := PINRequest{Kind: k, Reader: name, Serial: res.serial, Holder: res.entry.holder(), TriesLeft: -1}
		if i == 0 {
			req.TriesLeft, req.MaxTries, req.LastTry = state.TriesLeft, state.MaxTries, state.TriesLeft == 1
		}
		s, perr := pinFn(ctx, req)
		if perr != nil {
			clear(s)
			return res, fmt.Errorf("card: %s entry: %w", k, perr)
		}
		secrets = append(secrets, s)
		if cerr := cps.CheckPIN(s, secretDigits(k)); cerr != nil {
			return res, fmt.Errorf("%w: %s", ErrPINFormat, k)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// Tx2: same card? then the operation itself.
	tx2, err := e.begin(ctx, name)
	if errors.Is(err, ErrNoCard) {
		err = fmt.Errorf("%w: %w", ErrCardRemoved, err)
	}
	if err != nil {
		return res, err
	}
	defer func() {
		tx2.end()
		res.stats.add(tx2)
	}()
	if tx2.sess.Insertion() != insertion {
		serial, err := tx2.profile.ReadSerial(tx2.ch)
		if err != nil {
			return res, translate(err)
		}
		if serial != res.serial {
			e.mismatch(name)
			return res, fmt.Errorf("%w: card %s was replaced by card %s during the PIN entry", ErrCardMismatch, res.serial, serial)
		}
		e.mu.Lock()
		if s := e.slots[name]; s != nil && s.serial == serial {
			s.insertion = tx2.sess.Insertion()
		}
		e.mu.Unlock()
	}
	if ks, ok := tx2.profile.(cps.AuthKeySizer); ok && res.entry != nil && res.entry.auth != nil {
		if pub, ok := res.entry.auth.PublicKey.(*rsa.PublicKey); ok {
			ks.SetAuthKeyBits(pub.N.BitLen())
		}
	}
	res.verified = true // run VERIFYs first; a failure before any VERIFY leaves the counter unknown, not wrong
	if err := run(tx2, secrets); err != nil {
		return res, translate(err)
	}
	return res, nil
}

// prepare is Tx1 of a PIN operation: it fills res.serial and res.entry and
// returns the counter state of the first secret asked. want, when set, is
// the serial the caller addressed: another card gives ErrCardMismatch.
func (e *Engine) prepare(tx *txn, name string, first PINKind, res *opResult, want string) (cps.CHVState, uint64, error) {
	insertion := tx.sess.Insertion()
	e.mu.Lock()
	s := e.slotLocked(name)
	known, reported := "", s.reported
	if s.insertion == insertion && s.serial != "" {
		known = s.serial
	}
	e.mu.Unlock()
	serial := known
	if serial == "" {
		var err error
		if serial, err = tx.profile.ReadSerial(tx.ch); err != nil {
			return cps.CHVState{}, 0, translate(err)
		}
	}
	res.serial = serial
	if want != "" && serial != want {
		e.mismatch(name)
		return cps.CHVState{}, 0, fmt.Errorf("%w: reader %q holds card %s, not %s", ErrCardMismatch, name, serial, want)
	}
	if reported != "" && serial != reported {
		e.mismatch(name)
		return cps.CHVState{}, 0, fmt.Errorf("%w: the card read on this reader was %s, it is now %s", ErrCardMismatch, reported, serial)
	}
	en, _, err := e.certificates(tx, serial)
	if err != nil {
		return cps.CHVState{}, 0, err
	}
	res.entry = en
	e.mu.Lock()
	s = e.slotLocked(name)
	s.serial, s.insertion = serial, insertion
	e.mu.Unlock()
	var st cps.CHVState
	if first == KindPUK {
		st, err = tx.profile.PUKStatus(tx.ch)
	} else {
		st, err = tx.profile.PINStatus(tx.ch)
	}
	if err != nil {
		return cps.CHVState{}, 0, translate(err)
	}
	return st, insertion, nil
}

// confirmSerial checks, in tx, that the card is the one with serial want:
// free when the engine read this insertion's serial already, otherwise the
// serial is read (CPS3 2 APDUs, CPS4 3).
func (e *Engine) confirmSerial(tx *txn, name, want string) error {
	e.mu.Lock()
	known := ""
	if s := e.slots[name]; s != nil && s.insertion == tx.sess.Insertion() {
		known = s.serial
	}
	e.mu.Unlock()
	if known == "" {
		serial, err := tx.profile.ReadSerial(tx.ch)
		if err != nil {
			return translate(err)
		}
		known = serial
	}
	if known != want {
		e.mismatch(name)
		return fmt.Errorf("%w: reader %q holds card %s, not %s", ErrCardMismatch, name, known, want)
	}
	return nil
}

// mismatch forgets which card the reader held, and reads the new one in
// the background (identity-available) when the monitor runs.
func (e *Engine) mismatch(name string) {
	e.mu.Lock()
	s := e.slots[name]
	var gen uint64
	ctx := e.runCtx
	if s != nil {
		s.leftLocked()
		s.gen++
		gen = s.gen
	}
	schedule := s != nil && ctx != nil && s.present
	if schedule {
		e.bg.Add(1)
	}
	e.mu.Unlock()
	if schedule {
		go func() {
			defer e.bg.Done()
			// Wait for the current operation to release the reader.
			e.waitIdle(ctx, name)
			e.preRead(ctx, name, gen)
		}()
	}
}

// waitIdle waits until no operation holds reader.
func (e *Engine) waitIdle(ctx context.Context, name string) {
	for {
		e.mu.Lock()
		s := e.slots[name]
		if s == nil || s.op == nil {
			e.mu.Unlock()
			return
		}
		done := s.op.done
		e.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}
