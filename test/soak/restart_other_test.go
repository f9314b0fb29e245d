//go:build !unix

package soak

import "errors"

func restartPCSCD() error { return errors.New("pcscd restart is unix-only") }
