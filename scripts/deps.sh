#!/usr/bin/env bash
# Installs the Debian 12 packages cpsagent needs to build, run and test.
# Usage: scripts/deps.sh [run|test]   (default: test)
set -euo pipefail
profile=${1:-test}
run_pkgs=(build-essential pkg-config ca-certificates pcscd libpcsclite-dev vsmartcard-vpcd
  libayatana-appindicator3-dev pinentry-gtk2 pinentry-curses pinentry-tty libnss3-tools pcsc-tools curl)
test_pkgs=(opensc openssl xvfb dbus dbus-x11 xdotool trayer chromium fonts-liberation
  imagemagick rpm msitools wixl desktop-file-utils osslsigncode nodejs npm procps psmisc util-linux iproute2 systemd)
pkgs=("${run_pkgs[@]}")
[ "$profile" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian (the dev image ships its own): accept any working node.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
filtered=(); for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done
if [ ${#filtered[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "deps: installing ${filtered[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${filtered[@]}"
fi
command -v go >/dev/null || { echo "deps: Go 1.26+ is required (https://go.dev/dl)"; exit 1; }
