#!/usr/bin/env bash
# Debian 12 packages that packaging/build.sh and packaging/test.sh need, on top of
# scripts/deps.sh (Go, gcc, libpcsclite-dev, libayatana-appindicator3-dev, ...).
# wixl is its own package in bookworm (msitools has msiinfo but not wixl).
set -euo pipefail
pkgs=(wixl msitools osslsigncode openssl rpm dpkg-dev libnss3-tools systemd desktop-file-utils man-db groff-base file)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "packaging deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
