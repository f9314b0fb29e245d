package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/testutil"
)

func TestZZDebugEvents(t *testing.T) {
	testutil.RequirePCSCD(t)
	testutil.LockPCSCD(t, false, 10*time.Minute)
	testutil.LockVPCDSlot0(t, 10*time.Minute)
	fx := newCardFixture(t, virtual.ModelCPS3)
	vc := startVCard(t, t, fx.fresh(t), fx.vcardArgs()...)
	a := startAgent(t, agentOpts{})
	a.waitCard(t, vpcdReader, true, 60*time.Second)
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(wctx, strings.Replace(a.bases[0], "https://", "wss://", 1)+"/v1/events",
		&websocket.DialOptions{HTTPClient: a.client, HTTPHeader: http.Header{"Origin": {portalOrigin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, b, err := c.Read(wctx)
	t.Logf("first %s %v", b, err)
	_ = vc.stop(t)
	_, b, err = c.Read(wctx)
	t.Logf("msg %s %v", b, err)
	vc = startVCard(t, t, vc.state, vc.args...)
	for {
		_, b, err := c.Read(wctx)
		t.Logf("msg %s %v", b, err)
		if err != nil {
			break
		}
	}
	t.Logf("agent:\n%s", a.out)
}
