#!/usr/bin/python3
"""Capability lists reach the client as the backend wrote them, minus
STARTTLS, LOGINDISABLED and channel-binding (-PLUS) SASL mechanisms,
whatever their case: in the greeting's response code, in an untagged
CAPABILITY response, in untagged and tagged OK [CAPABILITY ...] codes
and in the tagged OK of LOGIN.  The backend is a scripted TLS server
that advertises all three everywhere."""

import os
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from direct import tagged  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
ctx = mailstack.client_context(certdir)

GREETING = (b"* OK [CAPABILITY IMAP4rev1 STARTTLS LITERAL+ LOGINDISABLED "
            b"ID AUTH=SCRAM-SHA-256-PLUS AUTH=SCRAM-SHA-256 AUTH=PLAIN "
            b"IDLE] scripted ready\r\n")
GREETING_SEEN = (b"* OK [CAPABILITY IMAP4rev1 LITERAL+ ID AUTH=SCRAM-SHA-256 "
                 b"AUTH=PLAIN IDLE] ")
CAPS = (b"* CAPABILITY IMAP4rev1 StartTLS SASL-IR AUTH=scram-sha-1-plus "
        b"LoginDisabled AUTH=PLAIN X-ONE ENABLE\r\n")
CAPS_SEEN = b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN X-ONE ENABLE\r\n"
NOOP = (b"* OK [CAPABILITY IMAP4rev1 STARTTLS X-THREE] untagged code\r\n"
        b"%s OK [CAPABILITY IMAP4rev1 X-TWO STARTTLS "
        b"AUTH=SCRAM-SHA-256-PLUS LOGINDISABLED] NOOP done\r\n")
NOOP_SEEN = (b"* OK [CAPABILITY IMAP4rev1 X-THREE] untagged code\r\n"
             b"%s OK [CAPABILITY IMAP4rev1 X-TWO] NOOP done\r\n")
LOGIN = (b"%s OK [CAPABILITY IMAP4rev1 STARTTLS IDLE LOGINDISABLED "
         b"AUTH=SCRAM-SHA-256-PLUS MOVE] Logged in\r\n")
LOGIN_SEEN = b"%s OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n"
HIDDEN = (b"STARTTLS", b"LOGINDISABLED", b"-PLUS")


def backend(peer, sock):
    """A TLS IMAP server that says the same capabilities everywhere."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(os.path.join(certdir, "backend.pem"),
                           os.path.join(certdir, "backend-key.pem"))
    sock = server.wrap_socket(sock, server_side=True)
    sock.sendall(GREETING)
    while True:
        line = peer.recv_line(sock)
        words = line.split()
        if len(words) < 2:
            return
        tag, verb = words[0], words[1].upper()
        if verb == b"CAPABILITY":
            sock.sendall(CAPS + tag + b" OK CAPABILITY completed\r\n")
        elif verb == b"NOOP":
            sock.sendall(NOOP % tag)
        elif verb == b"LOGIN":
            sock.sendall(LOGIN % tag)
            # After login the relay is opaque: lists pass unchanged.
            sock.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS AFTER\r\n")
        elif verb == b"LOGOUT":
            sock.sendall(b"* BYE bye\r\n" + tag + b" OK LOGOUT done\r\n")
            return
        else:
            sock.sendall(tag + b" BAD what\r\n")


peer = gateway.ScriptedPeer(backend, connections=2)
for prog in ("mailgate-imaps", "mailgate-imap-starttls"):
    g = gateway.Gateway(prog, base, gateway.imap_settings(
        certdir, "127.0.0.1", peer.port, "tls")).start()
    before = len(g.summaries())
    sock = g.connect()
    if prog == "mailgate-imaps":
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        greeting = gateway.read_until(sock, b"\r\n")
        t.ok(greeting.startswith(GREETING_SEEN),
             "%s: greeting code filtered, order kept" % prog) \
            or t.diag(greeting)
    else:
        greeting = gateway.read_until(sock, b"\r\n")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(b"a CAPABILITY\r\n")
    t.is_(tagged(sock, b"a"), CAPS_SEEN + b"a OK CAPABILITY completed\r\n",
          "%s: untagged CAPABILITY filtered, order kept" % prog)
    sock.sendall(b"b NOOP\r\n")
    t.is_(tagged(sock, b"b"), NOOP_SEEN % b"b",
          "%s: untagged and tagged [CAPABILITY] codes filtered" % prog)
    sock.sendall(b"c LOGIN user pass\r\n")
    reply = tagged(sock, b"c")
    reply += gateway.read_until(sock, b"AFTER\r\n", timeout=5)
    t.is_(reply, LOGIN_SEEN % b"c" +
          b"* CAPABILITY IMAP4rev1 STARTTLS AFTER\r\n",
          "%s: LOGIN's tagged code filtered, then the relay is opaque"
          % prog)
    sock.sendall(b"d LOGOUT\r\n")
    tagged(sock, b"d")
    sock.close()
    found = g.wait_summaries(before + 1)
    s = found[before] if len(found) > before else {}
    t.is_(s.get("login"), "ok", "%s: login=ok" % prog)
    t.is_(s.get("status"), "0", "%s: status=0" % prog)
    seen = g.log()
    t.ok("c LOGIN [hidden]" in seen and "user pass" not in seen,
         "%s: LOGIN arguments stay out of the log" % prog)

mailstack.wait_until(lambda: not peer.thread.is_alive(), 10,
                     "the scripted backend")
t.is_(peer.errors, [], "the scripted backend saw no errors")
t.ok(b"c LOGIN user pass\r\n" in peer.received,
     "LOGIN reached the backend byte for byte")
t.ok(all(word not in GREETING_SEEN + CAPS_SEEN + NOOP_SEEN + LOGIN_SEEN
         for word in HIDDEN), "(expected lists hold none of the three)")
t.done()
