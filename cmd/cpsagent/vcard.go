package main

import "github.com/cpsagent/cpsagent/internal/card/virtual"

func init() {
	register(command{name: "vcard", summary: "insert the virtual CPS3 test card into a vpcd reader (pcscd)", run: virtual.RunCommand})
}
