//go:build !race

package fuzzhttp

const raceEnabled = false
