#!/bin/sh
# cpsagent post-install (deb: "configure" [old-version]; rpm: $1 = 1 install, 2 upgrade).
# On a first install, enable the user unit for every user ("systemctl --global"
# only writes /etc/systemd/user/graphical-session.target.wants/; no user manager
# is touched): the agent then starts with each graphical session. An
# administrator's later "systemctl --global disable cpsagent.service" is kept
# across upgrades.
set -e
first=0
case "$1" in
  configure) [ -z "$2" ] && first=1 ;;
  1) first=1 ;;
esac
if [ "$first" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl --global enable cpsagent.service >/dev/null 2>&1 || \
    echo "cpsagent: could not enable the user unit for all users (systemctl --global enable cpsagent.service)" >&2
fi
exit 0
