#!/usr/bin/env bash
# Renders cpsagent.svg to the PNG sizes the packages ship (hicolor theme,
# Windows .ico through go-winres). Needs rsvg-convert (Debian: librsvg2-bin).
# The PNGs are committed; run this only after changing the SVG.
set -euo pipefail
cd "$(dirname "$0")"
for s in 16 32 48 64 128 256; do
  rsvg-convert -w "$s" -h "$s" cpsagent.svg -o "cpsagent-$s.png"
done
