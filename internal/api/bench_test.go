package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// instantPrompter answers the PIN at once: benchmarks measure the agent,
// not a human typing.
type instantPrompter struct{}

func (instantPrompter) GetPIN(ctx context.Context, r pinentry.Request) (*pinentry.Secret, error) {
	return pinentry.SecretFromBytes([]byte(goodPIN)), nil
}

func (instantPrompter) Confirm(context.Context, pinentry.ConfirmRequest) (pinentry.Decision, error) {
	return pinentry.AllowOnce, nil
}

func benchHarness(b *testing.B) *harness {
	h := newHarness(b, harnessOpts{options: func(o *Options) { o.RateBurst, o.RatePerMinute = 0, 0 }})
	h.srv.prompter = instantPrompter{}
	return h
}

// opTimer keeps per-operation durations: total (the whole handler),
// card (Signature.CardTime: inside the card transport, here the in-process
// virtual card's RSA operation) and overhead (total - card).
type opTimer struct {
	total, overhead, card []time.Duration
}

// benchCardOp runs one card operation per iteration through the whole
// handler (gate, JSON, prompt adapter, engine, verification, answer) and
// reports the agent's overhead: total time minus the time spent inside the
// card transport (Signature.CardTime, captured by a wrapper of the engine).
func benchCardOp(b *testing.B, path, body string) {
	h := benchHarness(b)
	cs := &cardTimeService{CardService: h.eng}
	h.srv.cards = cs
	handler := h.srv.Handler()
	var tm opTimer
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := req(http.MethodPost, path, body)
		w := httptest.NewRecorder()
		start := time.Now()
		handler.ServeHTTP(w, r)
		total := time.Since(start)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		ct := cs.last()
		tm.total = append(tm.total, total)
		tm.overhead = append(tm.overhead, total-ct)
		tm.card = append(tm.card, ct)
	}
	b.StopTimer()
	b.ReportMetric(float64(median(tm.overhead).Microseconds()), "overhead-median-µs")
	b.ReportMetric(float64(median(tm.total).Microseconds()), "total-median-µs")
	b.ReportMetric(float64(median(tm.card).Microseconds()), "card-median-µs")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// cardTimeService records Signature.CardTime of each operation.
type cardTimeService struct {
	CardService
	mu sync.Mutex
	ct time.Duration
}

func (c *cardTimeService) record(d time.Duration) {
	c.mu.Lock()
	c.ct = d
	c.mu.Unlock()
}

func (c *cardTimeService) last() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ct
}

func (c *cardTimeService) Authenticate(ctx context.Context, reader string, data []byte, pin cardPINFunc) (*cardSignature, error) {
	s, err := c.CardService.Authenticate(ctx, reader, data, pin)
	if s != nil {
		c.record(s.CardTime)
	}
	return s, err
}

func (c *cardTimeService) Sign(ctx context.Context, reader string, tbs []byte, pin cardPINFunc) (*cardSignature, error) {
	s, err := c.CardService.Sign(ctx, reader, tbs, pin)
	if s != nil {
		c.record(s.CardTime)
	}
	return s, err
}

func BenchmarkAuthenticate(b *testing.B) {
	benchCardOp(b, "/v1/authenticate", authBody(goodNonce))
}

func BenchmarkSignRaw(b *testing.B) {
	benchCardOp(b, "/v1/sign", validSign)
}

func BenchmarkSignCAdESDocument(b *testing.B) {
	doc := make([]byte, 64<<10)
	benchCardOp(b, "/v1/sign", `{"document":"`+b64(doc)+`","format":"cades"}`)
}

// benchRead measures a cached read under concurrency (b.RunParallel) and
// reports the median latency of one request.
func benchRead(b *testing.B, path string) {
	h := benchHarness(b)
	handler := h.srv.Handler()
	// warm the identity cache
	if w := h.do(http.MethodGet, path, ""); w.Code != 200 {
		b.Fatalf("%d %s", w.Code, w.Body)
	}
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			r := req(http.MethodGet, path, "")
			w := httptest.NewRecorder()
			start := time.Now()
			handler.ServeHTTP(w, r)
			mine = append(mine, time.Since(start))
			if w.Code != 200 {
				b.Errorf("%d", w.Code)
				return
			}
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(median(all).Nanoseconds())/1000, "median-µs")
}

func BenchmarkStatusParallel(b *testing.B) { benchRead(b, "/v1/status") }
func BenchmarkCardParallel(b *testing.B)   { benchRead(b, "/v1/card") }

// BenchmarkCardDuringSignature: /v1/card while another goroutine signs in
// a loop (reads must not wait for the card).
func BenchmarkCardDuringSignature(b *testing.B) {
	h := benchHarness(b)
	handler := h.srv.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, req(http.MethodPost, "/v1/sign", validSign))
		}
	}()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		start := time.Now()
		handler.ServeHTTP(w, req(http.MethodGet, "/v1/card", ""))
		lat = append(lat, time.Since(start))
		if w.Code != 200 {
			var p Problem
			_ = json.Unmarshal(w.Body.Bytes(), &p)
			b.Fatalf("%d %s", w.Code, p.Code)
		}
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(median(lat).Nanoseconds())/1000, "median-µs")
}
