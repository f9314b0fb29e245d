#!/usr/bin/env bash
# Try cpsagent in one command: installs what is missing (Debian 12 / Ubuntu), builds the
# agent, trusts its per-install local CA in this user's browsers, starts the agent — on the
# real card when a reader other than the virtual ones is plugged in, else on the virtual
# CPS card (PIN 1234) — and the demo portal, then prints the URL to open. Ctrl-C stops both.
#   scripts/run.sh [--virtual-card[=medecin|infirmier|cpe]] [--headless]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
mkdir -p build/bin
echo "building cpsagent…"
go build -o build/bin/cpsagent ./cmd/cpsagent
bin=$PWD/build/bin/cpsagent
scripts/pcscd.sh >/dev/null || echo "note: pcscd could not be started; real cards will not be seen"

portal=https://127.0.0.1:47190
args=(serve --allow-origin "$portal")
virtual=""
for a in "$@"; do case "$a" in --virtual-card*) virtual="$a" ;; *) args+=("$a") ;; esac; done
if [ -z "$virtual" ]; then
  # A reader that is not one of vsmartcard's "Virtual PCD" slots means real hardware.
  if ! timeout 5 pcsc_scan -r 2>/dev/null | grep -E '^[0-9]+: ' | grep -vq 'Virtual PCD'; then
    virtual=--virtual-card
  fi
fi
[ -n "$virtual" ] && args+=("$virtual")

"$bin" install --trust-only --quiet || echo "note: could not add the local CA to the browsers' trust stores (see 'cpsagent doctor')"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
"$bin" "${args[@]}" & pids+=($!)
# The agent takes the first free port of 47180-47199 (another session may hold 47180).
urls=(); for p in $(seq 47180 47199); do urls+=("https://127.0.0.1:$p/v1/status"); done
for _ in $(seq 1 100); do
  curl -sk --max-time 1 -o /dev/null -w '%{http_code}\n' -H "Origin: $portal" "${urls[@]}" 2>/dev/null | grep -q '^200$' && break
  sleep 0.1
done
"$bin" demo-portal & pids+=($!)
echo
echo "cpsagent is running${virtual:+ with the virtual card (PIN 1234)}."
echo "Open the demo portal: $portal/"
wait -n "${pids[@]}"
