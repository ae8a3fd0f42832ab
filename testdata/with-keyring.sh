#!/bin/sh
# Runs a command inside a private D-Bus session with its own, unlocked
# gnome-keyring (a real Secret Service), so the OS-keyring tests run for real
# and never touch a user's desktop keyring. AUTHPHONE_TEST_KEYRING=1 tells
# the tests a private keyring is there.
set -eu
GOMODCACHE="$(go env GOMODCACHE)"
GOCACHE="$(go env GOCACHE)"
GOPATH="$(go env GOPATH)"
export GOMODCACHE GOCACHE GOPATH
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/data" "$tmp/run"
chmod 700 "$tmp/run"
HOME="$tmp" XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" \
dbus-run-session -- sh -c '
	echo authphone-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
	AUTHPHONE_TEST_KEYRING=1 "$@"
' sh "$@"
