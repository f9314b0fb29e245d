#!/usr/bin/env bash
# Builds every cpsagent package that can be built on Debian/Ubuntu, into build/packages/:
#   - Linux amd64 binary (cgo: PC/SC, tray), .deb and .rpm (nfpm v2.45.2);
#   - Windows amd64 cpsagent.exe (GUI subsystem: the autostart opens no console) and
#     cpsagent-cli.exe (console: install, uninstall, doctor, version), with icon and
#     version resource (go-winres v0.3.3), Authenticode-signed, and the MSI (wixl), signed;
#   - SHA256SUMS.
# macOS needs a Mac (cgo with the PCSC framework, pkgbuild/productbuild, notarization):
# see packaging/macos/README.md.
#
# Usage: packaging/build.sh            (from anywhere; CI runs it through packaging/test.sh)
# Environment:
#   CPSAGENT_VERSION   version (default: git describe, else 0.0.0~dev)
#   SIGN_PKCS12, SIGN_PASSWORD_FILE   real code-signing certificate (PKCS#12) and its password file;
#                      without them a throw-away TEST certificate is generated under build/sign/
#                      (never committed: build/ is ignored) and the signatures are verified against it.
#   SIGN_TIMESTAMP_URL RFC 3161 timestamp server (real signing only; CI has no network)
#   SKIP_WINDOWS=1     Linux packages only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=build/packages
tools=$root/build/tools
mkdir -p "$out" "$tools"
log() { printf '[build] %s\n' "$*"; }
die() { printf '[build] ERROR: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (${2:-apt-get install $1}); packaging/deps.sh installs everything"; }

NFPM_VERSION=v2.45.2
WINRES_VERSION=v0.3.3

# --- version -------------------------------------------------------------------------------
version=${CPSAGENT_VERSION:-}
if [ -z "$version" ]; then
  version=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true)
  if [ -z "$version" ]; then
    rev=$(git rev-parse --short HEAD 2>/dev/null || true)
    version=0.0.0~${rev:+git$rev}
    [ -n "$rev" ] || version=0.0.0~dev
  fi
fi
version=${version#v}
case "$version" in [0-9]*) ;; *) die "version $version must start with a digit" ;; esac
pkgversion=${version//-/\~}          # 1.2.3-rc1 → 1.2.3~rc1 (sorts before 1.2.3 in dpkg and rpm)
numeric=$(printf '%s' "$version" | sed -E 's/^([0-9]+(\.[0-9]+){0,2}).*/\1/')
while [ "$(printf '%s' "$numeric" | tr -cd . | wc -c)" -lt 2 ]; do numeric="$numeric.0"; done
log "version $version (packages $pkgversion, Windows/MSI $numeric)"
ldflags="-s -w -X main.version=$version"

# --- tools (Go modules, pinned; kept out of the agent's go.mod) -------------------------------
GOBIN=$tools go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
GOBIN=$tools go install "github.com/tc-hib/go-winres@$WINRES_VERSION"

# --- Linux ---------------------------------------------------------------------------------
need gcc build-essential
arch=$(go env GOARCH)
lb=build/linux-$arch
mkdir -p "$lb"
log "linux/$arch binary"
CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$lb/cpsagent" ./cmd/cpsagent
gzip -9n -c packaging/man/cpsagent.1 > "$lb/cpsagent.1.gz"
[ -f docs/admin.md ] || die "docs/admin.md is missing"
# nfpm does not expand variables in file paths: render the config first.
sed -e "s|\${CPSAGENT_VERSION}|$pkgversion|g" -e "s|\${CPSAGENT_ARCH}|$arch|g" -e "s|\${CPSAGENT_BUILD}|$lb|g" \
  packaging/nfpm.yaml > "$lb/nfpm.yaml"
for p in deb rpm; do
  log "$p"
  "$tools/nfpm" package --config "$lb/nfpm.yaml" --packager "$p" --target "$out/" >/dev/null
done

# --- Windows -------------------------------------------------------------------------------
if [ "${SKIP_WINDOWS:-}" != 1 ]; then
  need wixl "apt-get install wixl"
  need osslsigncode
  need openssl
  wb=build/windows-amd64
  mkdir -p "$wb"
  log "windows/amd64 resources (icon, version, manifest)"
  rm -f internal/winres/*.syso
  trap 'rm -f "$root"/internal/winres/*.syso' EXIT
  "$tools/go-winres" simply --arch amd64 --out internal/winres/rsrc --manifest gui \
    --icon packaging/icons/cpsagent-256.png \
    --product-name cpsagent --file-description "cpsagent: CPS smart-card agent for web portals" \
    --product-version "$numeric.0" --file-version "$numeric.0" \
    --original-filename cpsagent.exe --copyright "cpsagent contributors"
  log "windows/amd64 binaries"
  GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -tags notray -ldflags "$ldflags -H windowsgui" -o "$wb/cpsagent.unsigned.exe" ./cmd/cpsagent
  GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -tags notray -ldflags "$ldflags" -o "$wb/cpsagent-cli.unsigned.exe" ./cmd/cpsagent
  rm -f internal/winres/*.syso

  # Signing material: a real PKCS#12, or a throw-away test CA + code-signing leaf.
  sign=build/sign
  mkdir -p "$sign"
  if [ -n "${SIGN_PKCS12:-}" ]; then
    [ -n "${SIGN_PASSWORD_FILE:-}" ] || die "SIGN_PASSWORD_FILE is required with SIGN_PKCS12"
    signargs=(-pkcs12 "$SIGN_PKCS12" -readpass "$SIGN_PASSWORD_FILE")
    [ -n "${SIGN_TIMESTAMP_URL:-}" ] && signargs+=(-ts "$SIGN_TIMESTAMP_URL")
    verifyargs=()
  else
    log "generating a TEST code-signing certificate in $sign (not trusted by Windows)"
    umask 077
    cat > "$sign/ext.cnf" <<'CNF'
[ca]
basicConstraints=critical,CA:true,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[leaf]
basicConstraints=critical,CA:false
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF
    openssl req -x509 -newkey rsa:3072 -nodes -keyout "$sign/test-ca.key" -out "$sign/test-ca.pem" -days 30 \
      -subj "/CN=cpsagent TEST code-signing CA (not for distribution)" -config "$sign/ext.cnf" -extensions ca 2>/dev/null
    openssl req -new -newkey rsa:3072 -nodes -keyout "$sign/test-signer.key" -out "$sign/test-signer.csr" \
      -subj "/CN=cpsagent TEST code signing/O=cpsagent" 2>/dev/null
    openssl x509 -req -in "$sign/test-signer.csr" -CA "$sign/test-ca.pem" -CAkey "$sign/test-ca.key" -CAcreateserial \
      -out "$sign/test-signer.pem" -days 30 -extfile "$sign/ext.cnf" -extensions leaf 2>/dev/null
    umask 022
    signargs=(-certs "$sign/test-signer.pem" -key "$sign/test-signer.key")
    verifyargs=(-CAfile "$sign/test-ca.pem")
  fi
  sign_file() { # in out
    rm -f "$2"
    osslsigncode sign "${signargs[@]}" -h sha256 -n cpsagent -i https://github.com/cpsagent/cpsagent \
      -in "$1" -out "$2" >/dev/null
    local report="$wb/$(basename "$2").verify.txt"
    osslsigncode verify "${verifyargs[@]}" -in "$2" >"$report" 2>&1 || { cat "$report"; die "signature of $2 does not verify"; }
  }
  log "signing the executables"
  sign_file "$wb/cpsagent.unsigned.exe" "$wb/cpsagent.exe"
  sign_file "$wb/cpsagent-cli.unsigned.exe" "$wb/cpsagent-cli.exe"
  cp docs/admin.md "$wb/admin.md"
  # The MSI's icon (Add/Remove Programs).
  go run ./packaging/cmd/mkico -o "$wb/cpsagent.ico" packaging/icons/cpsagent-{16,32,48,256}.png
  log "msi"
  msi=cpsagent-$pkgversion-x64.msi
  (cd "$wb" && wixl -a x64 -D Version="$numeric" -D SourceDir=. -D IconFile=cpsagent.ico \
      -o cpsagent.unsigned.msi "$root/packaging/windows/cpsagent.wxs")
  sign_file "$wb/cpsagent.unsigned.msi" "$out/$msi"
  cp "$wb/cpsagent.exe" "$out/cpsagent-$pkgversion-windows-amd64.exe"
  cp "$wb/cpsagent-cli.exe" "$out/cpsagent-cli-$pkgversion-windows-amd64.exe"
  if [ -z "${SIGN_PKCS12:-}" ]; then
    install -m 0644 "$sign/test-ca.pem" "$out/TEST-code-signing-CA.pem"
  fi
fi

# --- checksums -----------------------------------------------------------------------------
(cd "$out" && rm -f SHA256SUMS && sha256sum -- * > SHA256SUMS)
log "done:"
ls -l "$out"
