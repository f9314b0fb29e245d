#!/bin/sh
# Removes cpsagent from a Mac (a .pkg has no uninstaller). Run with sudo. For the logged-in
# user it first runs "cpsagent uninstall" (CA out of the login keychain); other users run
# "cpsagent uninstall" themselves before, or keep a CA that nothing uses. UNTESTED: needs a Mac.
set -e
label=io.github.cpsagent
user=$(stat -f %Su /dev/console 2>/dev/null)
if [ -n "$user" ] && [ "$user" != root ]; then
  uid=$(id -u "$user")
  launchctl bootout "gui/$uid/$label" 2>/dev/null || true
  launchctl asuser "$uid" sudo -u "$user" /usr/local/bin/cpsagent uninstall --no-opt-out --quiet || true
fi
rm -f "/Library/LaunchAgents/$label.plist" /usr/local/bin/cpsagent /usr/local/share/man/man1/cpsagent.1
pkgutil --forget "$label" >/dev/null 2>&1 || true
echo "cpsagent removed (users' state in ~/Library/Application Support/cpsagent stays)"
