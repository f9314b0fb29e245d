#!/bin/sh
# cpsagent pre-removal (deb: "remove" | "upgrade" …; rpm: $1 = 0 removal, 1 upgrade).
# On removal (not upgrade): stop the package-wide autostart, then, for every
# user who ran "cpsagent install" (a manifest exists), undo exactly what it
# added (the local CA in the browsers' stores, the per-user autostart), as
# that user. The users' ledgers, logs and local CA files stay in their home
# directories (remove them with "cpsagent uninstall --purge" before removal).
set -e
case "$1" in
  remove|0) ;;
  *) exit 0 ;;
esac
if command -v systemctl >/dev/null 2>&1; then
  systemctl --global disable cpsagent.service >/dev/null 2>&1 || true
fi
[ -x /usr/bin/cpsagent ] || exit 0
getent passwd | while IFS=: read -r name _ uid _ _ home _; do
  [ -n "$home" ] && [ -d "$home" ] || continue
  manifest="$home/.local/state/cpsagent/install-manifest.json"
  [ -f "$manifest" ] || continue
  rt="/run/user/$uid"
  if [ "$(id -u)" = "$uid" ]; then
    HOME="$home" /usr/bin/cpsagent uninstall --no-opt-out --quiet </dev/null || true
  elif command -v runuser >/dev/null 2>&1; then
    if [ -d "$rt" ]; then
      runuser -u "$name" -- env HOME="$home" XDG_RUNTIME_DIR="$rt" /usr/bin/cpsagent uninstall --no-opt-out --quiet </dev/null || true
    else
      runuser -u "$name" -- env HOME="$home" /usr/bin/cpsagent uninstall --no-opt-out --quiet </dev/null || true
    fi
  fi
done
exit 0
