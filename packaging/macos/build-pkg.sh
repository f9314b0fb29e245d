#!/bin/sh
# Builds cpsagent-VERSION.pkg. Runs ON A MAC ONLY (Xcode command-line tools): the agent
# needs cgo with Apple's PCSC framework, and pkgbuild/productbuild/notarytool exist only
# on macOS. Not run by CI (Debian). UNTESTED here.
#   VERSION=1.2.3 packaging/macos/build-pkg.sh
#   Signing: SIGN_INSTALLER="Developer ID Installer: …" SIGN_APP="Developer ID Application: …"
#   Notarization: NOTARY_PROFILE=<xcrun notarytool keychain profile>
set -eu
cd "$(dirname "$0")/../.."
[ "$(uname -s)" = Darwin ] || { echo "build-pkg.sh needs macOS" >&2; exit 1; }
VERSION=${VERSION:?set VERSION}
root=build/macos/root
rm -rf build/macos && mkdir -p "$root/usr/local/bin" "$root/Library/LaunchAgents" "$root/usr/local/share/man/man1"
for arch in arm64 amd64; do
  CGO_ENABLED=1 GOOS=darwin GOARCH=$arch go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
    -o "build/macos/cpsagent-$arch" ./cmd/cpsagent
done
lipo -create -output "$root/usr/local/bin/cpsagent" build/macos/cpsagent-arm64 build/macos/cpsagent-amd64
if [ -n "${SIGN_APP:-}" ]; then
  codesign --force --options runtime --timestamp --sign "$SIGN_APP" "$root/usr/local/bin/cpsagent"
fi
cp packaging/macos/io.github.cpsagent.plist "$root/Library/LaunchAgents/"
cp packaging/man/cpsagent.1 "$root/usr/local/share/man/man1/"
pkgbuild --root "$root" --identifier io.github.cpsagent --version "$VERSION" \
  --scripts packaging/macos/scripts --install-location / build/macos/cpsagent-component.pkg
set -- build/macos/cpsagent-component.pkg "build/packages/cpsagent-$VERSION.pkg"
mkdir -p build/packages
if [ -n "${SIGN_INSTALLER:-}" ]; then
  productbuild --sign "$SIGN_INSTALLER" --package "$1" "$2"
else
  productbuild --package "$1" "$2"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$2" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$2"
fi
echo "built $2"
