#!/usr/bin/python3
"""A message of more than 10 MB goes through each IMAP gateway both
ways unchanged: APPENDed as one large synchronising literal, then
FETCHed as BODY[] and compared byte for byte, with the byte counts of
the summary line covering it."""

import base64
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from mailstack import ALICE, ALICE_PW, BOB, BOB_PW  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
ctx = mailstack.client_context(certdir)
SIZE = 10 * 1024 * 1024 + 12345


def big_message(seed):
    """More than SIZE bytes of CRLF lines, different for each seed."""
    head = (b"From: alice@example.test\r\nSubject: large %d\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" % seed)
    raw = base64.b64encode(os.urandom(SIZE * 3 // 4 + 3000))
    lines = [raw[i:i + 76] for i in range(0, len(raw), 76)]
    return head + b"\r\n".join(lines) + b"\r\n"


class Reader:
    """Buffered reads from a socket, bounded by a deadline."""

    def __init__(self, sock, timeout=60):
        self.sock = sock
        self.buf = b""
        self.end = time.monotonic() + timeout

    def _more(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data in time")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n):
        parts, have = [self.buf[:n]], len(self.buf[:n])
        self.buf = self.buf[n:]
        while have < n:
            self._more()
            take = self.buf[:n - have]
            parts.append(take)
            have += len(take)
            self.buf = self.buf[len(take):]
        return b"".join(parts)

    def tagged(self, tag):
        lines = []
        while not lines or not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return b"".join(lines)


def open_tls(g):
    sock = g.connect(timeout=60)
    if g.prog == "mailgate-imap-starttls":
        plain = Reader(sock)
        plain.line()
        sock.sendall(b"s STARTTLS\r\n")
        plain.tagged(b"s")
    sock = ctx.wrap_socket(sock, server_hostname="localhost")
    r = Reader(sock)
    if g.prog == "mailgate-imaps":
        r.line()
    return sock, r


def fetch_body(sock, r, tag):
    """BODY[] of message 1: the bytes of its literal, or None."""
    sock.sendall(tag + b" FETCH 1 BODY[]\r\n")
    body = None
    while True:
        line = r.line()
        if line.startswith(tag + b" "):
            return body, line
        m = re.search(rb"BODY\[\] \{(\d+)\}\r\n$", line)
        if m:
            body = r.exactly(int(m.group(1)))


dovecot = mailstack.Dovecot(os.path.join(base, "dovecot"), certdir)
dovecot.start()
for prog, security, port, user, pw in (
        ("mailgate-imap-starttls", "starttls", dovecot.imap_port, ALICE,
         ALICE_PW),
        ("mailgate-imaps", "tls", dovecot.imaps_port, BOB, BOB_PW)):
    g = gateway.Gateway(prog, base, gateway.imap_settings(
        certdir, "127.0.0.1", port, security)).start()
    name = "%s, backend %s" % (prog, security)
    msg = big_message(port)
    before = len(g.summaries())
    sock, r = open_tls(g)
    pw = pw.encode()
    sock.sendall(b'a LOGIN "%s" {%d}\r\n' % (user.encode(), len(pw)))
    r.line()
    sock.sendall(pw + b"\r\n")
    t.ok(b"a OK" in r.tagged(b"a"), "%s: logged in" % name)

    started = time.monotonic()
    sock.sendall(b"b APPEND INBOX {%d}\r\n" % len(msg))
    cont = r.line()
    t.ok(cont.startswith(b"+"), "%s: + for the large literal" % name)
    sock.sendall(msg + b"\r\n")
    reply = r.tagged(b"b")
    t.ok(b"b OK" in reply, "%s: APPEND of %d bytes stored" % (name,
                                                              len(msg))) \
        or t.diag(reply[-300:])

    sock.sendall(b"c SELECT INBOX\r\n")
    t.ok(b"* 1 EXISTS" in r.tagged(b"c"), "%s: SELECT shows it" % name)
    body, last = fetch_body(sock, r, b"d")
    t.ok(last.startswith(b"d OK"), "%s: FETCH completed" % name)
    t.is_(len(body or b""), len(msg), "%s: FETCH length" % name)
    t.ok(body == msg, "%s: FETCH BODY[] is byte-identical" % name)
    t.note("%s: %.1f s for APPEND and FETCH"
           % (name, time.monotonic() - started))
    sock.sendall(b"e LOGOUT\r\n")
    r.tagged(b"e")
    sock.close()

    found = g.wait_summaries(before + 1)
    s = found[before] if len(found) > before else {}
    t.is_(s.get("status"), "0", "%s: status=0" % name)
    t.ok(int(s.get("in", 0)) > len(msg) and int(s.get("out", 0)) > len(msg),
         "%s: in and out count the message (in=%s out=%s)"
         % (name, s.get("in"), s.get("out")))

t.done()
