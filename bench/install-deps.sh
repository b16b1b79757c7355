#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Install the Debian packages that make bench needs beyond those of the
# tests: the peers it measures mailgate against.  stunnel goes through
# t/install-deps.sh like the tests' packages.  nginx is optional: if it
# cannot be installed, the bench skips that peer.  Does nothing (and
# needs no root) when all are there.  Daemons are not started by the
# installation where a policy-rc.d forbids it; the bench starts its own
# private instances in any case.
set -eu

sh "$(dirname "$0")/../t/install-deps.sh" stunnel4

updated=""
for p in nginx libnginx-mod-mail; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
	*" installed") continue ;;
	esac
	if [ "$(id -u)" != 0 ]; then
		echo "$p missing (run as root to install it): nginx peer skipped"
		continue
	fi
	echo "installing: $p"
	[ -n "$updated" ] || apt-get update -qq || true
	updated=1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends "$p" >/dev/null ||
	    echo "$p not installed: nginx peer skipped"
done
