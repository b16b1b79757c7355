#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Install the Debian packages that building, the demo and the tests
# need, and any named as arguments, if any is missing.  Does nothing
# (and needs no root) when all are there.
set -eu

PKGS="build-essential pkg-config libgnutls28-dev systemd
perl python3 ca-certificates postfix dovecot-core dovecot-imapd
dovecot-lmtpd swaks curl gnutls-bin openssl mandoc $*"

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
