#!/usr/bin/env bash
# Packaging test (CI runs it as root on Debian 12): builds every package with packaging/build.sh,
# then checks them:
#   .deb  dpkg-deb -I/-c, dpkg -i on this machine, the installed "cpsagent version", the unit
#         (systemd-analyze verify --user), man page, desktop entries, the package-wide autostart,
#         a real per-user "cpsagent install" for a test user that the package removal undoes
#         (prerm), dpkg -r, dpkg -P;
#   .rpm  rpm -qip / -qlp / --requires / --scripts;
#   .exe  PE GUI/console subsystems, version resource, osslsigncode verify (with the test CA;
#         and that it fails without it);
#   .msi  msiinfo export File / Registry / CustomAction, osslsigncode verify.
# Under CI=true a missing tool or root is a failure; otherwise the check is skipped loudly.
# Ends with "N passed, N failed, N skipped". SKIP_BUILD=1 reuses build/packages.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pass=0 fail=0 skip=0
ok()   { pass=$((pass+1)); printf 'ok    %s\n' "$*"; }
bad()  { fail=$((fail+1)); printf 'FAIL  %s\n' "$*"; }
skp()  { if [ "${CI:-}" = true ]; then bad "$* (required in CI)"; else skip=$((skip+1)); printf 'SKIP  %s\n' "$*"; fi; }
check() { local what=$1; shift; if "$@" >/tmp/cpsagent-pkgtest.out 2>&1; then ok "$what"; else bad "$what"; sed 's/^/      /' /tmp/cpsagent-pkgtest.out | tail -20; fi; }
has() { command -v "$1" >/dev/null 2>&1; }
isroot() { [ "$(id -u)" = 0 ]; }

if isroot; then packaging/deps.sh >/dev/null || bad "packaging/deps.sh"; fi

out=build/packages
if [ "${SKIP_BUILD:-}" != 1 ]; then
  rm -rf "$out"
  if packaging/build.sh > build-packages.log 2>&1; then ok "packaging/build.sh"; else bad "packaging/build.sh"; tail -30 build-packages.log; fi
  mv build-packages.log build/ 2>/dev/null || true
fi
deb=$(ls "$out"/cpsagent_*_amd64.deb 2>/dev/null | head -1)
rpmf=$(ls "$out"/cpsagent-*.x86_64.rpm 2>/dev/null | head -1)
msi=$(ls "$out"/cpsagent-*-x64.msi 2>/dev/null | head -1)
exe=$(ls "$out"/cpsagent-[0-9]*-windows-amd64.exe 2>/dev/null | head -1)
cli=$(ls "$out"/cpsagent-cli-*-windows-amd64.exe 2>/dev/null | head -1)
testca=$out/TEST-code-signing-CA.pem
version=$(basename "${deb:-x_0_}" | cut -d_ -f2 | sed 's/-1$//')

echo "--- sizes"
for f in "$deb" "$rpmf" "$exe" "$cli" "$msi"; do [ -n "$f" ] && [ -f "$f" ] && printf '      %8s  %s\n' "$(du -h "$f" | cut -f1)" "$(basename "$f")"; done

# ---------------------------------------------------------------------------------------------
echo "--- .deb"
if [ -z "$deb" ]; then bad ".deb built"; else
  ok ".deb built: $(basename "$deb")"
  info=$(dpkg-deb -I "$deb")
  check ".deb control: Package cpsagent" grep -q '^ Package: cpsagent$' <<<"$info"
  check ".deb control: Depends pcscd, libpcsclite1, ayatana, libnss3-tools" \
    bash -c 'grep "^ Depends:" <<<"$0" | grep -q pcscd && grep "^ Depends:" <<<"$0" | grep -q libpcsclite1 && grep "^ Depends:" <<<"$0" | grep -q libayatana-appindicator3-1 && grep "^ Depends:" <<<"$0" | grep -q libnss3-tools' "$info"
  check ".deb control: postinst and prerm" bash -c 'grep -q " postinst" <<<"$0" && grep -q " prerm" <<<"$0"' "$info"
  contents=$(dpkg-deb -c "$deb")
  for p in ./usr/bin/cpsagent ./usr/lib/systemd/user/cpsagent.service ./etc/xdg/autostart/cpsagent.desktop \
           ./usr/share/applications/cpsagent.desktop ./usr/share/man/man1/cpsagent.1.gz \
           ./usr/share/icons/hicolor/scalable/apps/cpsagent.svg ./usr/share/icons/hicolor/48x48/apps/cpsagent.png \
           ./usr/share/icons/hicolor/256x256/apps/cpsagent.png ./usr/share/doc/cpsagent/admin.md; do
    check ".deb contains $p" grep -q " $p\$" <<<"$contents"
  done
  check ".deb: /usr/bin/cpsagent is 0755 root" bash -c 'grep " ./usr/bin/cpsagent$" <<<"$0" | grep -q "^-rwxr-xr-x root/root"' "$contents"
  check ".deb: /etc/xdg/autostart/cpsagent.desktop is a conffile" bash -c 'dpkg-deb --ctrl-tarfile "$0" | tar -xO ./conffiles | grep -qx /etc/xdg/autostart/cpsagent.desktop' "$deb"

  if ! isroot; then skp "dpkg -i (needs root)"; else
    dpkg -r cpsagent >/dev/null 2>&1 || true
    if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" > /tmp/cpsagent-dpkg.log 2>&1; then ok "dpkg -i"; else
      bad "dpkg -i"; sed 's/^/      /' /tmp/cpsagent-dpkg.log | tail -15
      echo "      (dependencies: scripts/deps.sh installs pcscd, libnss3-tools, libayatana-appindicator3-dev)"
    fi
    check "installed cpsagent version prints $version" bash -c '/usr/bin/cpsagent version | tee /dev/stderr | grep -q "^cpsagent $0 "' "$(sed 's/~/~/' <<<"$version")"
    check "dpkg -s cpsagent: installed" bash -c 'dpkg-query -W -f="\${Status}" cpsagent | grep -q "install ok installed"'
    check "postinst enabled the user unit for all users" test -L /etc/systemd/user/graphical-session.target.wants/cpsagent.service
    if has systemd-analyze; then
      rt=$(mktemp -d)
      if XDG_RUNTIME_DIR=$rt systemd-analyze --user verify /usr/lib/systemd/user/cpsagent.service > /tmp/cpsagent-sdv.log 2>&1; then
        ok "systemd-analyze --user verify cpsagent.service"
      elif grep -q "Failed to initialize manager" /tmp/cpsagent-sdv.log; then
        skp "systemd-analyze --user verify: no offline user manager here ($(head -1 /tmp/cpsagent-sdv.log))"
      else
        bad "systemd-analyze --user verify cpsagent.service"; sed 's/^/      /' /tmp/cpsagent-sdv.log
      fi
      rm -rf "$rt"
    else skp "systemd-analyze not installed"; fi
    if has man; then
      check "man page renders without warnings" bash -c 'w=$(MANWIDTH=80 man --warnings -l /usr/share/man/man1/cpsagent.1.gz 2>&1 >/dev/null); [ -z "$w" ] || { echo "$w"; exit 1; }'
    else skp "man not installed"; fi
    if has desktop-file-validate; then
      check "desktop entries validate" desktop-file-validate --no-hints /usr/share/applications/cpsagent.desktop /etc/xdg/autostart/cpsagent.desktop
    else skp "desktop-file-validate not installed (desktop-file-utils)"; fi

    # A real user runs "cpsagent install"; removing the package must undo it (prerm).
    u=cpsagent-pkgtest uhome=/var/tmp/cpsagent-pkgtest-home
    if ! id "$u" >/dev/null 2>&1; then
      useradd --system --create-home --home-dir "$uhome" --shell /usr/sbin/nologin "$u" >/dev/null 2>&1 || bad "useradd $u"
    fi
    uhome=$(getent passwd "$u" | cut -d: -f6)
    if [ -d "$uhome" ] && has certutil; then
      rm -rf "$uhome/.pki" "$uhome/.local" "$uhome/.config"
      check "per-user install as $u (trust + autostart)" runuser -u "$u" -- env -u XDG_CONFIG_HOME -u XDG_STATE_HOME -u XDG_RUNTIME_DIR HOME="$uhome" /usr/bin/cpsagent install
      check "$u: CA in ~/.pki/nssdb" bash -c 'certutil -L -d "sql:$0/.pki/nssdb" | grep -q "cpsagent local CA"' "$uhome"
      check "$u: CA in ~/.local/share/pki/nssdb" bash -c 'certutil -L -d "sql:$0/.local/share/pki/nssdb" | grep -q "cpsagent local CA"' "$uhome"
      check "$u: manifest written" test -f "$uhome/.local/state/cpsagent/install-manifest.json"
      check "$u: no per-user autostart next to the package's" bash -c '! ls "$0/.config/systemd/user/cpsagent.service" "$0/.config/autostart/cpsagent.desktop" 2>/dev/null' "$uhome"
    else skp "per-user install test (no home for $u, or no certutil)"; fi

    if dpkg -r cpsagent > /tmp/cpsagent-dpkg.log 2>&1; then ok "dpkg -r"; else bad "dpkg -r"; sed 's/^/      /' /tmp/cpsagent-dpkg.log | tail; fi
    check "binary removed" test ! -e /usr/bin/cpsagent
    check "package-wide autostart disabled" test ! -e /etc/systemd/user/graphical-session.target.wants/cpsagent.service
    if [ -d "$uhome" ]; then
      check "$u: prerm removed the CA and what install created" bash -c '! [ -e "$0/.pki" ] && ! [ -e "$0/.local/share/pki" ] && ! [ -e "$0/.local/state/cpsagent/install-manifest.json" ]' "$uhome"
      check "$u: prerm kept the user's state (local CA files)" test -f "$uhome/.local/state/cpsagent/tls/ca.pem"
      check "$u: no opt-out files written on package removal" bash -c '! [ -e "$0/.config" ]' "$uhome"
    fi
    dpkg -P cpsagent >/dev/null 2>&1
    check "dpkg -P leaves no file" bash -c '! [ -e /etc/xdg/autostart/cpsagent.desktop ] && ! [ -e /usr/lib/systemd/user/cpsagent.service ]'
    userdel -r "$u" >/dev/null 2>&1 || true
  fi
fi

# ---------------------------------------------------------------------------------------------
echo "--- .rpm"
if ! has rpm; then skp "rpm not installed"; elif [ -z "$rpmf" ]; then bad ".rpm built"; else
  ok ".rpm built: $(basename "$rpmf")"
  check "rpm -qip: Name cpsagent" bash -c 'rpm -qip "$0" 2>/dev/null | grep -q "^Name *: cpsagent"' "$rpmf"
  list=$(rpm -qlp "$rpmf" 2>/dev/null)
  sed 's/^/      /' <<<"$list"
  for p in /usr/bin/cpsagent /usr/lib/systemd/user/cpsagent.service /etc/xdg/autostart/cpsagent.desktop \
           /usr/share/man/man1/cpsagent.1.gz /usr/share/applications/cpsagent.desktop /usr/share/doc/cpsagent/admin.md; do
    check ".rpm contains $p" grep -qx "$p" <<<"$list"
  done
  check ".rpm requires pcsc-lite and nss-tools" bash -c 'r=$(rpm -qp --requires "$0" 2>/dev/null); grep -q "^pcsc-lite" <<<"$r" && grep -q "^nss-tools" <<<"$r"' "$rpmf"
  check ".rpm scripts (post, preun)" bash -c 's=$(rpm -qp --scripts "$0" 2>/dev/null); grep -q "postinstall scriptlet" <<<"$s" && grep -q "preuninstall scriptlet" <<<"$s"' "$rpmf"
fi

# ---------------------------------------------------------------------------------------------
echo "--- Windows"
if [ -z "$exe" ] || [ -z "$cli" ]; then bad "Windows executables built"; else
  ok "Windows executables built"
  check "cpsagent.exe is a PE32+ GUI executable" bash -c 'file "$0" | grep -q "PE32+ executable (GUI) x86-64"' "$exe"
  check "cpsagent-cli.exe is a PE32+ console executable" bash -c 'file "$0" | grep -q "PE32+ executable (console) x86-64"' "$cli"
  check "version resource (FileDescription, ProductName cpsagent)" python3 - "$exe" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
for s in ("VS_VERSION_INFO", "FileDescription", "ProductName", "cpsagent: CPS smart-card agent"):
    assert s.encode("utf-16-le") in b, s
PY
  if ! has osslsigncode; then skp "osslsigncode not installed"; else
    for f in "$exe" "$cli" "$msi"; do
      [ -n "$f" ] || continue
      if [ -f "$testca" ]; then
        check "osslsigncode verify -CAfile (test CA) $(basename "$f")" osslsigncode verify -CAfile "$testca" -in "$f"
        check "osslsigncode verify without the test CA fails: $(basename "$f")" bash -c '! osslsigncode verify -in "$0"' "$f"
      else
        check "osslsigncode verify $(basename "$f")" osslsigncode verify -in "$f"
      fi
    done
  fi
fi
if ! has msiinfo; then skp "msiinfo not installed (msitools)"; elif [ -z "$msi" ]; then bad ".msi built"; else
  ok ".msi built: $(basename "$msi")"
  files=$(msiinfo export "$msi" File 2>/dev/null)
  sed 's/^/      /' <<<"$files"
  for n in cpsagent.exe cpsagent-cli.exe admin.md; do check "MSI File table lists $n" grep -q "	$n	" <<<"$files"; done
  check "MSI Run value in HKCU" bash -c 'msiinfo export "$0" Registry | grep -q "CurrentVersion\\\\Run	cpsagent"' "$msi"
  check "MSI per-user (ALLUSERS=2, MSIINSTALLPERUSER=1)" bash -c 'p=$(msiinfo export "$0" Property | tr -d "\\r"); grep -qx "ALLUSERS	2" <<<"$p" && grep -qx "MSIINSTALLPERUSER	1" <<<"$p"' "$msi"
  check "MSI custom actions (trust on install, untrust on removal)" bash -c 'c=$(msiinfo export "$0" CustomAction); grep -q "install -trust-only" <<<"$c" && grep -q "uninstall -no-opt-out" <<<"$c"' "$msi"
  check "MSI major upgrade table" bash -c 'msiinfo export "$0" Upgrade | grep -q "6A0F2C3E-8B1D-4C57-9E2A-4D3B7C1E5F90"' "$msi"
fi

echo
echo "packaging: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
