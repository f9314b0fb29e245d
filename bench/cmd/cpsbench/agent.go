package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/ctxsleep"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// agentRun is the agent phase's state.
type agentRun struct {
	b      *bench
	a      *harness.Agent
	logOff int64
	q      string // ?reader=…
}

func (b *bench) runAgent(ctx context.Context) error {
	pin := b.vc.Card().Config().PIN
	pe, err := harness.NewPinentry(filepath.Join(b.tmp, "pinentry"), harness.PinentryStep{PIN: pin})
	if err != nil {
		return err
	}
	a, err := harness.StartAgent(ctx, harness.AgentOptions{Bin: b.cfg.agentBin, Dir: filepath.Join(b.tmp, "agent"), Pinentry: pe.Program})
	if err != nil {
		return err
	}
	defer func() {
		if err := a.Stop(); err != nil {
			b.finding("agent exit: %v", err)
		}
	}()
	r := &agentRun{b: b, a: a, q: "?reader=" + url.QueryEscape(b.reader)}
	if err := a.WaitCard(ctx, b.reader, true, 60*time.Second); err != nil {
		return err
	}
	if err := r.idle(ctx); err != nil {
		return err
	}
	// Warm-up (not recorded): TLS session, first prompt, caches.
	if _, err := r.sign(ctx); err != nil {
		return fmt.Errorf("warm-up signature: %w", err)
	}
	if _, err := r.auth(ctx); err != nil {
		return fmt.Errorf("warm-up authentication: %w", err)
	}
	if err := r.warm(ctx); err != nil {
		return err
	}
	if err := r.cold(ctx); err != nil {
		return err
	}
	return r.load(ctx)
}

// idle measures CPU, wake-ups and RSS while nothing happens: card in the
// reader, identity read, no client connected.
func (r *agentRun) idle(ctx context.Context) error {
	b := r.b
	r.a.Client.CloseIdleConnections()
	if !ctxsleep.Sleep(ctx, 2*time.Second) { // let the post-insertion read and GC settle
		return ctx.Err()
	}
	s0, err := harness.ReadProc(r.a.PID())
	if err != nil {
		return err
	}
	b.logf("idle window %v (nothing may talk to the agent meanwhile)", b.cfg.idle)
	if !ctxsleep.Sleep(ctx, b.cfg.idle) {
		return ctx.Err()
	}
	s1, err := harness.ReadProc(r.a.PID())
	if err != nil {
		return err
	}
	res := &b.res.Resources
	res.IdleWindow = s1.At.Sub(s0.At)
	res.IdleCPU = s1.CPU - s0.CPU
	res.IdleCPUPercent = harness.CPUPercent(s0, s1)
	res.IdleWakeups = s1.Wakeups() - s0.Wakeups()
	res.IdleThreads = s1.Threads
	res.IdleRSSKiB = s1.RSSKiB
	b.logf("idle: CPU %v over %v (%.4f %%), %d context switches, RSS %d KiB, %d threads",
		res.IdleCPU, res.IdleWindow.Round(time.Millisecond), res.IdleCPUPercent, res.IdleWakeups, res.IdleRSSKiB, res.IdleThreads)
	return nil
}

// engineLog returns what the agent logged about the last card operation:
// the engine's "card operation" line and the PIN dialog's duration.
func (r *agentRun) engineLog() (*EngineSide, error) {
	ents, off, err := harness.ReadLog(r.a.LogFile, r.logOff)
	if err != nil {
		return nil, err
	}
	r.logOff = off
	var es *EngineSide
	var prompt time.Duration
	for _, e := range ents {
		switch {
		case e.Msg() == "card operation" && e.Str("logger") == "card":
			es = &EngineSide{}
			n, _ := e.Num("apdus")
			es.APDUs = int(n)
			es.CardTime, _ = e.Duration("cardTime")
			es.Took, _ = e.Duration("took")
		case e.Msg() == "pinentry dialog":
			d, _ := e.Duration("duration")
			prompt += d
		}
	}
	if es == nil {
		return nil, fmt.Errorf("no engine \"card operation\" line in the agent log")
	}
	es.Prompt = prompt
	return es, nil
}

func (r *agentRun) skipLog() {
	_, off, err := harness.ReadLog(r.a.LogFile, r.logOff)
	if err == nil {
		r.logOff = off
	}
}

func (r *agentRun) post(ctx context.Context, path, body string) (harness.Result, error) {
	res := r.a.Do(ctx, http.MethodPost, path, body)
	if res.Err != nil {
		return res, res.Err
	}
	if res.Status != http.StatusOK {
		code, _ := harness.ProblemCode(res)
		return res, fmt.Errorf("%s: %d %s", path, res.Status, code)
	}
	return res, nil
}

func (r *agentRun) sign(ctx context.Context) (Sample, error) {
	body := fmt.Sprintf(`{"dataToSign":%q,"reader":%q}`, b64(r.b.data), r.b.reader)
	var res harness.Result
	s, _ := r.b.measure(func() error {
		var err error
		if res, err = r.post(ctx, "/v1/sign", body); err != nil {
			return err
		}
		var sr api.SignResponse
		if err := strictJSON(res.Body, &sr); err != nil {
			return err
		}
		sig, err := base64.StdEncoding.DecodeString(sr.Signature)
		if err != nil {
			return err
		}
		return rsa.VerifyPKCS1v15(pubKey(r.b.signDER), crypto.SHA256, sum256(r.b.data), sig)
	})
	return r.finish(s)
}

func (r *agentRun) auth(ctx context.Context) (Sample, error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	nonce := b64(raw)
	body := fmt.Sprintf(`{"challengeNonce":%q,"reader":%q}`, nonce, r.b.reader)
	s, _ := r.b.measure(func() error {
		res, err := r.post(ctx, "/v1/authenticate", body)
		if err != nil {
			return err
		}
		var tok api.AuthToken
		if err := strictJSON(res.Body, &tok); err != nil {
			return err
		}
		sig, err := base64.StdEncoding.DecodeString(tok.Signature)
		if err != nil {
			return err
		}
		_, hash := api.AuthenticationData(harness.DefaultOrigin, nonce)
		return rsa.VerifyPKCS1v15(pubKey(r.b.authDER), crypto.SHA256, hash, sig)
	})
	return r.finish(s)
}

func (r *agentRun) finish(s Sample) (Sample, error) {
	if !s.OK {
		r.skipLog()
		return s, fmt.Errorf("%s", s.Err)
	}
	es, err := r.engineLog()
	if err != nil {
		return s, err
	}
	s.Engine = es
	if int64(es.APDUs) != s.APDUs {
		r.b.finding("agent logged %d APDUs for an operation, the card counted %d", es.APDUs, s.APDUs)
	}
	return s, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (r *agentRun) getCard(ctx context.Context) error {
	res := r.a.Do(ctx, http.MethodGet, "/v1/card"+r.q, "")
	if res.Err != nil {
		return res.Err
	}
	if res.Status != http.StatusOK {
		return fmt.Errorf("/v1/card: %d %s", res.Status, res.Body)
	}
	var id struct {
		Certificates struct {
			Authentication, Signature struct{ DER string }
		}
	}
	if err := json.Unmarshal(res.Body, &id); err != nil {
		return err
	}
	if id.Certificates.Signature.DER != b64(r.b.signDER) || id.Certificates.Authentication.DER != b64(r.b.authDER) {
		return fmt.Errorf("/v1/card: not the card's certificates")
	}
	return nil
}

// warm runs the operations on a card the agent already knows.
func (r *agentRun) warm(ctx context.Context) error {
	b := r.b
	sign := OpResult{Op: opSign, Tool: toolAgent, How: `POST /v1/sign {"dataToSign"} (PIN through pinentry)`}
	auth := OpResult{Op: opAuth, Tool: toolAgent, How: `POST /v1/authenticate {"challengeNonce"} (PIN through pinentry)`}
	wid := OpResult{Op: opWarmID, Tool: toolAgent, How: "GET /v1/card?reader=R"}
	st := OpResult{Op: opStatus, Tool: toolAgent, How: "GET /v1/status"}
	for i := 0; i < b.cfg.n; i++ {
		s, err := r.sign(ctx)
		if err != nil {
			return fmt.Errorf("signature %d: %w", i, err)
		}
		sign.Samples = append(sign.Samples, s)
		if s, err = r.auth(ctx); err != nil {
			return fmt.Errorf("authentication %d: %w", i, err)
		}
		auth.Samples = append(auth.Samples, s)
		s, _ = b.measure(func() error { return r.getCard(ctx) })
		wid.Samples = append(wid.Samples, s)
		s, _ = b.measure(func() error {
			_, err := r.a.Status(ctx)
			return err
		})
		st.Samples = append(st.Samples, s)
	}
	r.skipLog()
	for _, o := range []*OpResult{&sign, &auth, &wid, &st} {
		if o.okCount() != len(o.Samples) {
			return fmt.Errorf("agent %s failed: %s", o.Op, firstErr(o))
		}
		p50, _, _ := o.wallPercentiles()
		a, _ := o.medianAPDUs()
		b.logf("agent %-14s %3d APDUs, p50 %v", o.Op, a, p50.Round(time.Millisecond))
	}
	b.res.Ops = append(b.res.Ops, sign, auth, wid, st)
	return nil
}

// event is one WebSocket event as received.
type event struct {
	typ, reader string
	at          time.Time
}

// cold measures what a portal sees when the card has just been inserted:
// from the card-inserted event to the identity (GET /v1/card), then the
// signature or the authentication. The APDUs are counted from the
// insertion to the end, the agent's own read after insertion included.
func (r *agentRun) cold(ctx context.Context) error {
	b := r.b
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, _, err := websocket.Dial(wctx, strings.Replace(r.a.Base, "https://", "wss://", 1)+"/v1/events",
		&websocket.DialOptions{HTTPClient: r.a.Client, HTTPHeader: http.Header{"Origin": {harness.DefaultOrigin}}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	events := make(chan event, 64)
	go func() {
		for {
			_, m, err := c.Read(wctx)
			if err != nil {
				close(events)
				return
			}
			var e struct{ Type, Reader string }
			_ = json.Unmarshal(m, &e)
			events <- event{typ: e.Type, reader: e.Reader, at: time.Now()}
		}
	}()
	wait := func(typ string) (time.Time, error) {
		t := time.NewTimer(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					return time.Time{}, fmt.Errorf("event stream closed while waiting for %s", typ)
				}
				if e.typ == typ && (e.reader == b.reader || typ == "hello") {
					return e.at, nil
				}
			case <-t.C:
				return time.Time{}, fmt.Errorf("no %s event in 20 s", typ)
			}
		}
	}
	if _, err := wait("hello"); err != nil {
		return err
	}
	seq := func(then func() (Sample, error)) (Sample, error) {
		b.vc.Remove()
		if _, err := wait("card-removed"); err != nil {
			return Sample{}, err
		}
		before := b.vc.Stats()
		b.vc.Insert()
		t0, err := wait("card-inserted")
		if err != nil {
			return Sample{}, err
		}
		err = r.getCard(ctx)
		idWall := time.Since(t0)
		var sub Sample
		if err == nil && then != nil {
			sub, err = then()
		}
		wall := time.Since(t0)
		// Anything the agent still sends (a late read after insertion)
		// belongs to the sequence.
		ctxsleep.Sleep(ctx, 300*time.Millisecond)
		s := statsSample(b.vc.Stats().Sub(before))
		s.Wall, s.OK, s.Engine, s.IDWall = wall, err == nil, sub.Engine, idWall
		if err != nil {
			s.Err = err.Error()
		}
		r.skipLog()
		return s, nil
	}
	coldID := OpResult{Op: opColdID, Tool: toolAgent, How: "card inserted → card-inserted event → GET /v1/card"}
	coldSign := OpResult{Op: opColdSign, Tool: toolAgent, How: "card inserted → card-inserted event → GET /v1/card → POST /v1/sign"}
	coldAuth := OpResult{Op: opColdAuth, Tool: toolAgent, How: "card inserted → card-inserted event → GET /v1/card → POST /v1/authenticate"}
	for i := 0; i < b.cfg.cold; i++ {
		for _, x := range []struct {
			o    *OpResult
			then func() (Sample, error)
		}{
			{&coldID, nil},
			{&coldSign, func() (Sample, error) { return r.sign(ctx) }},
			{&coldAuth, func() (Sample, error) { return r.auth(ctx) }},
		} {
			s, err := seq(x.then)
			if err != nil {
				return err
			}
			x.o.Samples = append(x.o.Samples, s)
		}
		b.logf("agent cold run %d/%d: identity %d APDUs %v, read+sign %d APDUs %v, read+auth %d APDUs %v", i+1, b.cfg.cold,
			coldID.Samples[i].APDUs, coldID.Samples[i].Wall.Round(time.Millisecond),
			coldSign.Samples[i].APDUs, coldSign.Samples[i].Wall.Round(time.Millisecond),
			coldAuth.Samples[i].APDUs, coldAuth.Samples[i].Wall.Round(time.Millisecond))
	}
	for _, o := range []*OpResult{&coldID, &coldSign, &coldAuth} {
		if o.okCount() != len(o.Samples) {
			return fmt.Errorf("agent %s failed: %s", o.Op, firstErr(o))
		}
	}
	b.res.Ops = append(b.res.Ops, coldID, coldSign, coldAuth)
	return nil
}

// load runs concurrent portal clients (status and identity reads, plus
// signatures one after the other) and reads the agent's RSS and peak RSS.
func (r *agentRun) load(ctx context.Context) error {
	b := r.b
	const conc = 16
	per := 40
	if b.cfg.quick {
		per = 10
	}
	var wg sync.WaitGroup
	errs := make(chan error, conc+1)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < per; j++ {
				var res harness.Result
				if (i+j)%2 == 0 {
					res = r.a.Do(ctx, http.MethodGet, "/v1/status", "")
				} else {
					res = r.a.Do(ctx, http.MethodGet, "/v1/card"+r.q, "")
				}
				if res.Err != nil || res.Status != http.StatusOK {
					errs <- fmt.Errorf("load request: %v %d %s", res.Err, res.Status, res.Body)
					return
				}
			}
		}(i)
	}
	busy := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A signature started while a GET /v1/card holds the reader gets
		// agent_busy (see docs/performance.md): retry like a portal would.
		for j := 0; j < 3; j++ {
			for try := 0; ; try++ {
				_, err := r.sign(ctx)
				if err == nil {
					break
				}
				if !strings.Contains(err.Error(), "agent_busy") || try == 100 {
					errs <- err
					return
				}
				busy++
				ctxsleep.Sleep(ctx, 20*time.Millisecond)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	s, err := harness.ReadProc(r.a.PID())
	if err != nil {
		return err
	}
	res := &b.res.Resources
	res.LoadRSSKiB, res.LoadHWMKiB, res.LoadRequests, res.LoadConcurrency = s.RSSKiB, s.HWMKiB, conc*per+3+busy, conc+1
	if busy > 0 {
		b.finding("under load, %d signature request(s) got agent_busy because a concurrent GET /v1/card held the reader (retried)", busy)
	}
	b.logf("under load: RSS %d KiB, peak %d KiB", s.RSSKiB, s.HWMKiB)
	return nil
}

// runStartup times process start → first 200 of GET /v1/status, with the
// state directory already there (the normal start) and empty (first run:
// the local CA and TLS key are generated).
func (b *bench) runStartup(ctx context.Context) error {
	stateDir := filepath.Join(b.tmp, "startup-state")
	one := func(i int, dir, state string) (time.Duration, error) {
		a, err := harness.StartAgent(ctx, harness.AgentOptions{Bin: b.cfg.agentBin, Dir: dir, StateDir: state, LogLevel: "warn"})
		if err != nil {
			return 0, err
		}
		defer func() { _ = a.Stop() }()
		for {
			res := a.Do(ctx, http.MethodGet, "/v1/status", "")
			if res.Err == nil && res.Status == http.StatusOK {
				return time.Since(a.Started), nil
			}
			if time.Since(a.Started) > 60*time.Second {
				return 0, fmt.Errorf("no answer from /v1/status after 60 s: %v %d", res.Err, res.Status)
			}
			time.Sleep(time.Millisecond)
		}
	}
	res := &b.res.Resources
	for i := 0; i < 3; i++ {
		d, err := one(i, filepath.Join(b.tmp, fmt.Sprintf("first-%d", i)), filepath.Join(b.tmp, fmt.Sprintf("first-%d", i), "state"))
		if err != nil {
			return err
		}
		res.FirstStartup = append(res.FirstStartup, d)
	}
	for i := 0; i < b.cfg.startups+1; i++ {
		d, err := one(i, filepath.Join(b.tmp, "startup"), stateDir)
		if err != nil {
			return err
		}
		if i > 0 { // the first run creates the state directory
			res.Startup = append(res.Startup, d)
		}
	}
	b.logf("start-up to first /v1/status answer: p50 %v (first run, CA creation: p50 %v)",
		Percentile(res.Startup, 50).Round(time.Millisecond), Percentile(res.FirstStartup, 50).Round(time.Millisecond))
	return nil
}
