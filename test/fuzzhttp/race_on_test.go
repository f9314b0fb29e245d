//go:build race

package fuzzhttp

const raceEnabled = true
