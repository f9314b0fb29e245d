//go:build race

package soak

// raceEnabled: the agent binary is built with -race too, and its output is
// checked for data race reports.
const raceEnabled = true
