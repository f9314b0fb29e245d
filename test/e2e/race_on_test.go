//go:build race

package e2e

// raceEnabled: the agent binary is built with -race too.
const raceEnabled = true
