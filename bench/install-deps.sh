#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Install the Debian packages that make bench needs beyond those of the
# tests (t/install-deps.sh): the peers it measures mailgate against.
# Does nothing (and needs no root) when all are there.  nginx is
# optional: if it cannot be installed, the bench skips that peer.  Daemons are
# not started by the installation where a policy-rc.d forbids it; the
# bench starts its own private instances in any case.
set -eu

PKGS="stunnel4 nginx libnginx-mod-mail"

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
for p in $missing; do
	case "$p" in
	nginx|libnginx-mod-mail)
		apt-get install -y -qq --no-install-recommends "$p" \
		    >/dev/null || echo "$p not installed: nginx peer skipped" ;;
	*)
		apt-get install -y -qq --no-install-recommends "$p" >/dev/null ;;
	esac
done
