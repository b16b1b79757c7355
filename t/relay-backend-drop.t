#!/usr/bin/python3
"""A backend that drops the connection without answering, after login.

Once the relay is opaque, a backend that closes while a command it was
sent is unanswered (the final dot of a message, an IMAP FETCH) must not
look like a normal end: the client gets a 421 or a BYE [UNAVAILABLE]
in its protocol's words and the summary line says why, with status
111.  A backend that answered everything and then closed (221 after
QUIT) is a normal end.  Scripted backends: no real server drops a
message on purpose.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()

SMTP_REPLIES = {
    b"EHLO": b"250-fake.example\r\n250 8BITMIME\r\n",
    b"MAIL": b"250 2.1.0 ok\r\n",
    b"RCPT": b"250 2.1.5 ok\r\n",
    b"DATA": b"354 go ahead\r\n",
    b"QUIT": b"221 2.0.0 bye\r\n",
}


def smtp_backend(answer_dot):
    """A plaintext SMTP server that takes a message and then queues it
    and says goodbye ("yes"), closes without a word ("no"), or closes
    in the middle of its reply ("partial")."""
    def handler(peer, sock):
        sock.sendall(b"220 fake.example ESMTP\r\n")
        while True:
            line = peer.recv_line(sock)
            verb = line[:4].upper()
            if not line:
                return
            sock.sendall(SMTP_REPLIES.get(verb, b"502 5.5.2 no\r\n"))
            if verb == b"QUIT":
                return
            if verb != b"DATA":
                continue
            while not peer.received.endswith(b"\r\n.\r\n"):
                if not peer.recv_line(sock):
                    return
            if answer_dot == "partial":
                sock.sendall(b"250 2.0.0 que")
            if answer_dot != "yes":
                return
            sock.sendall(b"250 2.0.0 queued\r\n")
    return handler


def smtp_session(port):
    """EHLO, MAIL, RCPT, DATA, a body, QUIT: all the client saw."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    seen = gw.read_until(s, b"\r\n")
    for cmd in (b"EHLO me\r\n", b"MAIL FROM:<a@example.test>\r\n",
                b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n"):
        s.sendall(cmd)
        seen += gw.read_until(s, b"\r\n")
    s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    seen += gw.read_until(s, b"\r\n", timeout=5)
    try:
        s.sendall(b"QUIT\r\n")
        seen += gw.read_until(s, b"221", timeout=5)
    except OSError:
        pass
    s.close()
    return seen


def smtp_case(answer_dot):
    peer = gw.ScriptedPeer(smtp_backend(answer_dot))
    g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
        certdir, "127.0.0.1", peer.port, "none",
        allow_plaintext_backend="yes", allow_plaintext_clients="yes"))
    g.start()
    seen = smtp_session(g.port)
    summary = g.wait_summaries(1)[-1]
    g.stop()
    peer.stop()
    return seen, summary


seen, summary = smtp_case(answer_dot="no")
t.ok(b"421 4.4.2 Backend connection lost\r\n" in seen,
     "SMTP: a message cut off after its dot gets 421")
t.ok(b"250 2.0.0 queued" not in seen, "SMTP: no success invented")
t.is_(summary.get("status"), "111", "SMTP: summary status 111")
t.is_(summary.get("reason"), "backend closed before answering",
      "SMTP: summary reason")

seen, summary = smtp_case(answer_dot="partial")
t.ok(b"250 2.0.0 que" not in seen,
     "SMTP: an unfinished success line never reaches the client")
t.ok(b"421 4.4.2 Backend connection lost\r\n" in seen,
     "SMTP: an unfinished reply gets 421")
t.is_(summary.get("status"), "111", "SMTP: unfinished reply, status 111")

seen, summary = smtp_case(answer_dot="yes")
t.ok(b"250 2.0.0 queued" in seen and b"221 2.0.0 bye" in seen,
     "SMTP: an answered message and QUIT pass")
t.ok(b"421" not in seen, "SMTP: no 421 after a clean end")
t.is_(summary.get("status"), "0", "SMTP: clean end has status 0")


def imap_backend(peer, sock):
    """A plaintext IMAP server that logs anyone in, then dies on FETCH."""
    sock.sendall(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
    while True:
        line = peer.recv_line(sock)
        if not line:
            return
        tag, _, rest = line.partition(b" ")
        verb = rest.split(b" ")[0].strip().upper()
        if verb == b"FETCH":
            return
        sock.sendall(tag + b" OK done\r\n")


peer = gw.ScriptedPeer(imap_backend)
g = gw.Gateway("mailgate-imap-starttls", base, gw.imap_settings(
    certdir, "127.0.0.1", peer.port, "none",
    allow_plaintext_backend="yes", allow_plaintext_clients="yes"))
g.start()
s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
gw.read_until(s, b"\r\n")
s.sendall(b"a LOGIN user pass\r\n")
t.ok(b"a OK" in gw.read_until(s, b"a OK"), "IMAP: login relayed")
s.sendall(b"b FETCH 1 BODY[]\r\n")
seen = gw.read_until(s, b"BYE", timeout=5)
s.close()
summary = g.wait_summaries(1)[-1]
g.stop()
peer.stop()
t.ok(b"* BYE [UNAVAILABLE] Backend connection lost\r\n" in seen,
     "IMAP: an unanswered FETCH gets BYE [UNAVAILABLE]")
t.is_(summary.get("status"), "111", "IMAP: summary status 111")
t.is_(summary.get("login"), "ok", "IMAP: login was ok")
t.done()
