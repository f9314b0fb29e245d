#!/usr/bin/env bash
# Ensures pcscd is running (with the vsmartcard vpcd reader). Prints "started" when this
# script started it (so tests may restart it), "running" when it was already there.
set -euo pipefail
logdir=${CPSAGENT_LOGDIR:-/tmp/cpsagent-ci}
mkdir -p "$logdir"
if [ -S /run/pcscd/pcscd.comm ] && pgrep -x pcscd >/dev/null; then echo running; exit 0; fi
rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid 2>/dev/null || true
pcscd --foreground --debug >"$logdir/pcscd.log" 2>&1 &
echo $! >"$logdir/pcscd.pid"
for _ in $(seq 1 100); do
  [ -S /run/pcscd/pcscd.comm ] && grep -q "daemon ready" "$logdir/pcscd.log" 2>/dev/null && { echo started; exit 0; }
  sleep 0.1
done
echo "pcscd did not become ready; log:" >&2; tail -20 "$logdir/pcscd.log" >&2; exit 1
