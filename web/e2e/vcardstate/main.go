// Command vcardstate prepares a virtual card for the browser end-to-end
// test: it writes the state file `cpsagent vcard --state` reuses (so the
// card keeps its keys and certificates when the test removes and inserts
// it again) and the PEM chain of the test PKI that issued its
// certificates (for the demo portal's --ca and `openssl cms -verify`).
//
//	go run ./web/e2e/vcardstate -identity medecin -state card.json -chain chain.pem
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

func main() {
	identity := flag.String("identity", "medecin", "card identity")
	state := flag.String("state", "", "state file to create (required)")
	chain := flag.String("chain", "", "PEM file for the test PKI chain, root first (required)")
	flag.Parse()
	if *state == "" || *chain == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*identity, *state, *chain); err != nil {
		fmt.Fprintln(os.Stderr, "vcardstate:", err)
		os.Exit(1)
	}
}

func run(identity, state, chain string) error {
	if _, err := os.Stat(state); err == nil {
		return fmt.Errorf("%s exists", state)
	}
	cfg, err := virtual.Identity(identity)
	if err != nil {
		return err
	}
	pki, err := virtual.IdentityPKI()
	if err != nil {
		return err
	}
	cfg.StateFile = state
	if _, err := virtual.NewCard(cfg); err != nil {
		return err
	}
	return pki.WriteChainPEM(chain)
}
