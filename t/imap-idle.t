#!/usr/bin/python3
"""IDLE through each IMAP gateway: a client idles, new mail arrives
(APPENDed by a second client through the gateway, then delivered as a
Maildir file behind Dovecot's back), and the idling client hears
"* N EXISTS" within a bounded wait, then ends IDLE with DONE."""

import grp
import os
import pwd
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from direct import tagged  # noqa: E402
from mailstack import ALICE, ALICE_PW, BOB, BOB_PW  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
ctx = mailstack.client_context(certdir)
WAIT = 10


def wait_for(sock, pattern, timeout=WAIT):
    """Read until pattern matches; (match or None, bytes, seconds)."""
    data = b""
    start = time.monotonic()
    end = start + timeout
    while not re.search(pattern, data):
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return re.search(pattern, data), data, time.monotonic() - start


def logged_in(g, user, password):
    sock = g.connect()
    if g.prog == "mailgate-imap-starttls":
        gateway.read_until(sock, b"\r\n")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    sock = ctx.wrap_socket(sock, server_hostname="localhost")
    if g.prog == "mailgate-imaps":
        gateway.read_until(sock, b"\r\n")
    pw = password.encode()
    sock.sendall(b'l LOGIN "%s" {%d}\r\n' % (user.encode(), len(pw)))
    gateway.read_until(sock, b"\r\n")
    sock.sendall(pw + b"\r\n")
    return sock, b"l OK" in tagged(sock, b"l")


def append_via(g, user, password, text):
    sock, ok = logged_in(g, user, password)
    sock.sendall(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(text), text))
    reply = tagged(sock, b"a")
    sock.sendall(b"b LOGOUT\r\n")
    tagged(sock, b"b")
    sock.close()
    return ok and b"a OK" in reply


def deliver_file(dovecot, user, text):
    """Drop a message into user's Maildir as a delivery agent would."""
    maildir = dovecot.maildir(user)
    name = "%d.P%d.mailgate-test" % (time.time(), os.getpid())
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(text)
    os.chown(tmp, pwd.getpwnam(dovecot.mail_user).pw_uid,
             grp.getgrnam(dovecot.mail_group).gr_gid)
    os.rename(tmp, os.path.join(maildir, "new", name))


def mail(n):
    return (b"From: bob@example.test\r\nSubject: idle %d\r\n\r\n"
            b"new mail %d\r\n" % (n, n))


dovecot = mailstack.Dovecot(os.path.join(base, "dovecot"), certdir)
dovecot.start()
for prog, security, port, user, pw in (
        ("mailgate-imap-starttls", "starttls", dovecot.imap_port, ALICE,
         ALICE_PW),
        ("mailgate-imaps", "tls", dovecot.imaps_port, BOB, BOB_PW)):
    g = gateway.Gateway(prog, base, gateway.imap_settings(
        certdir, "127.0.0.1", port, security)).start()
    name = "%s, backend %s" % (prog, security)
    before = len(g.summaries())
    sock, ok = logged_in(g, user, pw)
    t.ok(ok, "%s: logged in" % name)
    sock.sendall(b"a SELECT INBOX\r\n")
    t.ok(re.search(rb"\* 0 EXISTS\r\n.*a OK", tagged(sock, b"a"), re.S),
         "%s: empty INBOX selected" % name)
    sock.sendall(b"b IDLE\r\n")
    found, data, _ = wait_for(sock, rb"^\+ .*\r\n")
    t.ok(found, "%s: + for IDLE" % name)

    t.ok(append_via(g, user, pw, mail(1)),
         "%s: second client APPENDs through the gateway" % name)
    found, data, took = wait_for(sock, rb"\* 1 EXISTS\r\n")
    t.ok(found, "%s: idling client sees * 1 EXISTS (%.2f s)"
         % (name, took)) or t.diag(data)

    deliver_file(dovecot, user, mail(2))
    found, data, took = wait_for(sock, rb"\* 2 EXISTS\r\n")
    t.ok(found, "%s: Maildir delivery: * 2 EXISTS (%.2f s)"
         % (name, took)) or t.diag(data)

    sock.sendall(b"DONE\r\n")
    found, data, _ = wait_for(sock, rb"(^|\n)b OK")
    t.ok(found, "%s: DONE ends IDLE with b OK" % name)
    sock.sendall(b"c LOGOUT\r\n")
    tagged(sock, b"c")
    sock.close()
    found = g.wait_summaries(before + 2)
    t.ok(len(found) - before == 2 and
         all(s.get("status") == "0" and s.get("login") == "ok"
             for s in found[before:]),
         "%s: both sessions logged in=ok status=0" % name)

t.done()
