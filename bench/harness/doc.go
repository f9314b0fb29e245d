// Package harness runs the real cpsagent binary against a virtual CPS3 card
// served to pcscd through the vsmartcard vpcd driver. It is shared by the
// benchmarks (bench/cmd/cpsbench), the fault and soak test (test/soak) and
// the HTTP fuzzer (test/fuzzhttp):
//
//   - BuildAgent builds the agent binary (release flags, or -race);
//   - LockSlot0 takes the cross-process locks that every test using vpcd
//     slot 0 takes (the testutil lock and the pcsctest locks);
//   - VCard serves an in-process virtual.Card on a vpcd slot, with fault
//     hooks (pull the card at the n-th APDU, slow APDUs, unplug) and an APDU
//     log, and keeps the card's counters (virtual.Stats) across
//     reconnections;
//   - Agent starts `cpsagent serve` as a child process (it dies with its
//     parent), talks to it as a web portal over HTTPS, reads its JSON log
//     and its debug metrics;
//   - Pinentry is a wrapper around the scripted fake pinentry that picks a
//     behaviour per invocation and records every PIN it hands out;
//   - ReadProc samples /proc/PID (CPU time, RSS, context switches, file
//     descriptors).
//
// Nothing here is imported by the agent binary.
package harness
