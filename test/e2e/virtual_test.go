package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

// TestE2E_VirtualCardInProcess is the README's first command: the agent
// with --virtual-card (no pcscd needed), answering a portal at once.
func TestE2E_VirtualCardInProcess(t *testing.T) {
	a := startAgent(t, agentOpts{virtual: "medecin"})
	ctx := context.Background()
	var st api.StatusResponse
	must(t, a.do(ctx, http.MethodGet, "/v1/status", ""), &st)
	if !st.CardPresent || len(st.Readers) != 1 {
		t.Fatalf("status %+v", st)
	}
	a.waitCard(t, st.Readers[0].Name, true, 30*time.Second)
	a.setPIN(t, pinentrytest.Options{PIN: "1234"}) // the virtual card's default PIN
	nonce := newNonce()
	r := a.do(ctx, http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+nonce+`"}`)
	must(t, r, nil)
	verifyToken(t, r.body, portalOrigin, nonce)
	must(t, a.do(ctx, http.MethodPost, "/v1/sign", `{"dataToSign":"YWJj"}`), nil)
	// A foreign page gets nothing.
	r = a.do(ctx, http.MethodGet, "/v1/status", "", "Origin", "https://evil.example")
	problem(t, r, api.CodeOriginNotAllowed)
	if err := a.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, a.out)
	}
}
