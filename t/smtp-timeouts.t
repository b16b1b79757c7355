#!/usr/bin/python3
"""Which timeout applies when, on the SMTP side.

Before AUTH succeeds, smtp.login_timeout limits an idle client; once
the backend has accepted the login, smtp.idle_timeout does, in the
dialogue and in the relay alike.  Either way the client is told with a
421 before the connection closes.  A scripted plaintext backend keeps
the test quick.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()

REPLIES = {
    b"EHLO": b"250-fake.example\r\n250 AUTH PLAIN\r\n",
    b"AUTH": b"235 2.7.0 ok\r\n",
    b"MAIL": b"250 2.1.0 ok\r\n",
}


def backend(peer, sock):
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        if not line:
            return
        sock.sendall(REPLIES.get(line[:4].upper(), b"502 5.5.2 no\r\n"))


def session(commands, login_timeout, idle_timeout):
    """Send commands, then idle; return (seconds idle, what arrived)."""
    peer = gw.ScriptedPeer(backend)
    g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
        certdir, "127.0.0.1", peer.port, "none",
        allow_plaintext_backend="yes", allow_plaintext_clients="yes",
        **{"smtp.login_timeout": login_timeout,
           "smtp.idle_timeout": idle_timeout}))
    g.start()
    s = socket.create_connection(("127.0.0.1", g.port), timeout=30)
    gw.read_until(s, b"\r\n")
    for cmd in commands:
        s.sendall(cmd)
        gw.read_until(s, b"\r\n")
    start = time.monotonic()
    seen = gw.read_until(s, b"\r\n", timeout=30)
    idle = time.monotonic() - start
    s.close()
    summary = g.wait_summaries(1)[-1]
    g.stop()
    peer.stop()
    return idle, seen, summary


idle, seen, summary = session([b"EHLO me\r\n"], 2, 20)
t.ok(idle < 10, "before login, login_timeout (2 s) applies: %.1f s" % idle)
t.ok(seen.startswith(b"421 4.4.2"), "before login, the client gets 421") \
    or t.diag(seen)

idle, seen, summary = session([b"EHLO me\r\n", b"AUTH PLAIN AGEAYg==\r\n"],
                              2, 6)
t.ok(idle > 4, "after login, not login_timeout (2 s): %.1f s" % idle)
t.ok(idle < 15, "after login, idle_timeout (6 s) applies: %.1f s" % idle)
t.ok(seen.startswith(b"421 4.4.2"), "after login, the client gets 421") \
    or t.diag(seen)
t.is_(summary.get("login"), "ok", "the summary says login=ok")

idle, seen, summary = session([b"EHLO me\r\n", b"AUTH PLAIN AGEAYg==\r\n",
                               b"MAIL FROM:<a@example.test>\r\n"], 2, 3)
t.ok(2.5 < idle < 12, "in the relay, idle_timeout (3 s) applies: %.1f s"
     % idle)
t.ok(seen.startswith(b"421 4.4.2"), "in the relay, the client gets 421") \
    or t.diag(seen)
t.is_(summary.get("reason"), "idle timeout", "the summary says why")
t.done()
