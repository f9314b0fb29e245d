package virtual

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// RunCommand is the body of `cpsagent vcard`: it inserts a virtual card
// (a CPS3 by default; --model cps4, cps3-cl or other) into a vpcd reader
// and keeps it there (across pcscd restarts) until ctx is cancelled.
//
//	cpsagent vcard [--vpcd 127.0.0.1:35963] [--model cps3|cps4|cps3-cl|other]
//	               [--identity medecin] [--state FILE]
//	               [--trace FILE] [--latency instant|cps3|cps3-trace]
//	               [--transport t0|t1] [--list]
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vcard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("vpcd", DefaultVPCDAddr, "vpcd driver address (slot 0 is port 35963, slot 1 is 35964)")
	identity := fs.String("identity", "medecin", "card identity: "+strings.Join(Identities(), ", "))
	statePath := fs.String("state", "", "state file keeping the card's keys, certificates, codes and counters across runs")
	tracePath := fs.String("trace", "", "append an APDU trace to this file (PIN data masked)")
	latency := fs.String("latency", "instant", "latency model: "+strings.Join(LatencyPresets(), ", "))
	transport := fs.String("transport", "", "t0 (61xx and GET RESPONSE, like a CPS3) or t1 (data returned directly); default t0, t1 for a CPS4")
	model := fs.String("model", ModelCPS3, "card model: "+strings.Join(Models(), ", ")+" (other: a non-CPx card the agent must leave alone)")
	list := fs.Bool("list", false, "list the identities and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent vcard [flags]\n\nInserts a virtual CPS3 or CPS4 test card (or a non-CPx card) into a vsmartcard vpcd reader.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("vcard: unexpected argument %q", fs.Arg(0))
	}
	if *list {
		for _, n := range Identities() {
			fmt.Fprintln(stdout, n)
		}
		return nil
	}
	lat, err := LatencyPreset(*latency)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}

	var cfg Config
	if *statePath != "" && StateHasIdentity(*statePath) {
		// The state file holds the whole card: no key generation.
		cfg.Holder = *identity
	} else if cfg, err = Identity(*identity); err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	cfg.StateFile = *statePath
	cfg.Latency = lat
	cfg.Behaviour.Transport = *transport
	cfg.Model = *model
	if *tracePath != "" {
		f, err := os.OpenFile(*tracePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("vcard: opening the trace: %w", err)
		}
		defer f.Close()
		cfg.Trace = f
	}
	card, err := NewCard(cfg)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	cur := card.Config()
	slot := SlotName(*addr)
	if slot == "" {
		slot = "unknown vpcd slot"
	}
	st := card.PINStatus()
	if cur.Model == ModelOther {
		fmt.Fprintf(stdout, "virtual non-CPx card (ATR %s): the agent must report it unsupported and send it nothing\n", apdu.Hex(card.ATR()))
	} else {
		fmt.Fprintf(stdout, "virtual %s card (test card, not a real CPS)\n", modelTitle(cur.Model))
	}
	fmt.Fprintf(stdout, "  reader:   %s (vpcd %s)\n", slot, *addr)
	fmt.Fprintf(stdout, "  identity: %s\n", cur.Holder)
	fmt.Fprintf(stdout, "  serial:   %s (Cryptolib: %s)\n", cur.Serial, cur.Serial[:8])
	fmt.Fprintf(stdout, "  PIN:      %s (%d tries left)\n", cur.PIN, st.PINTriesLeft)
	fmt.Fprintf(stdout, "  PUK:      %s (%d tries, %d uses left)\n", cur.PUK, st.PUKTriesLeft, st.PUKUsesLeft)
	if *statePath != "" {
		fmt.Fprintf(stdout, "  state:    %s\n", *statePath)
	}

	client := &VPCDClient{
		Addr:   *addr,
		Card:   card,
		Redial: true,
		Logf:   func(format string, a ...any) { fmt.Fprintf(stderr, "vcard: "+format+"\n", a...) },
		OnEvent: func(e VPCDEvent) {
			switch {
			case e.Connected:
				fmt.Fprintf(stdout, "card inserted in %s\n", slot)
			case e.Err != nil && !errors.Is(e.Err, ErrCardPulled):
				fmt.Fprintf(stdout, "card out of the reader (%v), waiting for vpcd\n", e.Err)
			}
		},
	}
	err = client.Run(ctx)
	fmt.Fprintln(stdout, "card removed")
	return err
}
