#!/usr/bin/env bash
# cpsagent vs OpenSC on one virtual CPS3 card in one pcscd reader (vpcd slot 0).
#
#   bench/run.sh            full run (about 15 minutes): 30 runs per warm operation,
#                           10 per cold sequence and per OpenSC operation, 60 s idle window
#   bench/run.sh --quick    CI size (about 4 minutes): 5 / 3 / 3 runs, 30 s idle window
#   bench/run.sh --help     every option of cpsbench (e.g. --latency cps3-trace, --trace)
#
# Needs (Debian 12): pcscd, vsmartcard-vpcd, opensc, gcc, libpcsclite-dev (and, for the
# binary-size row, libayatana-appindicator3-dev: scripts/deps.sh installs them).
# Starts pcscd when it is not running (and stops it at the end), builds the agent with the
# release flags, waits for vpcd slot 0 (the same flock as the tests), and writes
# build/bench/results.md, results.json and latency.png.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${CPSBENCH_OUT:-build/bench}
mkdir -p "$out"

for arg in "$@"; do
  case $arg in
  -h | --help | -help) go run ./bench/cmd/cpsbench -help; exit 0 ;;
  esac
done

missing=()
for tool in pcscd pkcs11-tool pkcs15-tool go gcc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -f /etc/reader.conf.d/vpcd ] || missing+=(vsmartcard-vpcd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing ${missing[*]} (apt-get install pcscd vsmartcard-vpcd opensc gcc libpcsclite-dev golang)" >&2
  exit 1
fi

pcscd_pid=
cleanup() {
  if [ -n "$pcscd_pid" ]; then
    kill "$pcscd_pid" 2>/dev/null || true
    wait "$pcscd_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
if ! [ -S /run/pcscd/pcscd.comm ] || ! pgrep -x pcscd >/dev/null; then
  echo "bench: starting pcscd (stopped again at the end)"
  rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid 2>/dev/null || true
  pcscd --foreground >"$out/pcscd.log" 2>&1 &
  pcscd_pid=$!
  for _ in $(seq 1 100); do
    [ -S /run/pcscd/pcscd.comm ] && break
    sleep 0.1
  done
  [ -S /run/pcscd/pcscd.comm ] || { echo "bench: pcscd did not start:" >&2; cat "$out/pcscd.log" >&2; exit 1; }
fi

echo "bench: building (release flags: -trimpath -ldflags '-s -w')"
export CGO_ENABLED=1
go build -trimpath -ldflags "-s -w" -o "$out/cpsagent" ./cmd/cpsagent
go build -trimpath -ldflags "-s -w" -tags notray -o "$out/cpsagent-notray" ./cmd/cpsagent
go build -o "$out/cpsbench" ./bench/cmd/cpsbench

"$out/cpsbench" --agent "$out/cpsagent" --agent-notray "$out/cpsagent-notray" --out "$out" "$@"
