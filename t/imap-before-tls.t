#!/usr/bin/python3
"""Before TLS on port 143 a client can learn the capabilities, start
TLS, wait or leave, nothing else: LOGIN and AUTHENTICATE, with quoted
strings, literals or an initial response, get NO [PRIVACYREQUIRED]
without a "+" ever inviting the password, and nothing reaches the
backend.  Commands pipelined behind STARTTLS are discarded, and
STARTTLS inside TLS is refused."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from direct import quiet, tagged  # noqa: E402
from mailstack import ALICE, ALICE_PW, BOB, BOB_PW  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
ctx = mailstack.client_context(certdir)


def lines(data):
    return data.split(b"\r\n")


def session_summary(g, before):
    found = g.wait_summaries(before + 1)
    return found[before] if len(found) > before else {}


# ------------------------------------------ refused before TLS, no backend


def backend_handler(peer, sock):
    """Any connection at all is the failure this part looks for."""
    peer.connections = getattr(peer, "connections", 0) + 1
    sock.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] scripted\r\n")
    peer.recv_some(sock, 2)


peer = gateway.ScriptedPeer(backend_handler, connections=8)
g = gateway.Gateway("mailgate-imap-starttls", base, gateway.imap_settings(
    certdir, "127.0.0.1", peer.port, "starttls")).start()

PLAIN = b"\0" + ALICE.encode() + b"\0" + ALICE_PW.encode()
CASES = [
    ("LOGIN with quoted strings",
     b'a LOGIN "%s" "%s"\r\n' % (BOB.encode(), BOB_PW.encode()), b"a"),
    ("LOGIN with a synchronising literal",
     b"b LOGIN {%d}\r\n" % len(ALICE), b"b"),
    ("LOGIN with non-synchronising literals",
     b"c LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (
         len(ALICE), ALICE.encode(), len(ALICE_PW.encode()),
         ALICE_PW.encode()), b"c"),
    ("AUTHENTICATE PLAIN without initial response",
     b"d AUTHENTICATE PLAIN\r\n", b"d"),
    ("AUTHENTICATE PLAIN with initial response",
     b"e AUTHENTICATE PLAIN %s\r\n"
     % mailstack.sasl_plain(ALICE, ALICE_PW).encode(), b"e"),
]

for name, command, tag in CASES:
    before = len(g.summaries())
    sock = g.connect()
    greeting = gateway.read_until(sock, b"\r\n")
    sock.sendall(command)
    # Read on for a while: a "+" could come late, and so could an answer
    # to a literal taken for a command.
    reply = tagged(sock, tag) + quiet(sock, 0.5)
    got = [x for x in lines(reply) if x]
    t.ok(not [x for x in got if x.startswith(b"+")],
         "%s: no continuation request is offered" % name) or t.diag(got)
    t.is_(len([x for x in got if x.startswith(tag + b" ")]), 1,
          "%s: exactly one tagged reply" % name)
    t.ok(got and got[0].startswith(tag + b" NO [PRIVACYREQUIRED]"),
         "%s: NO [PRIVACYREQUIRED]" % name) or t.diag(got)
    t.is_(len(got), 1, "%s: nothing else is said" % name)
    sock.sendall(b"z CAPABILITY\r\n")
    reply = tagged(sock, b"z")
    t.ok(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\nz OK" in reply,
         "%s: the session goes on, still before TLS" % name)
    sock.sendall(b"q LOGOUT\r\n")
    reply = tagged(sock, b"q")
    t.ok(b"* BYE" in reply and b"q OK" in reply,
         "%s: LOGOUT answered" % name)
    sock.close()
    s = session_summary(g, before)
    t.is_(s.get("status"), "0", "%s: status=0" % name)
    t.is_(s.get("login"), "none", "%s: login=none" % name)

sock = g.connect()
greeting = gateway.read_until(sock, b"\r\n")
t.ok(greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 STARTTLS "
                         b"LOGINDISABLED]"),
     "greeting announces STARTTLS and LOGINDISABLED")
sock.sendall(b"f SELECT INBOX\r\n")
t.ok(tagged(sock, b"f").startswith(b"f BAD"), "SELECT before TLS: BAD")
sock.sendall(b"g NOOP\r\n")
t.ok(tagged(sock, b"g").startswith(b"g OK"), "NOOP before TLS: OK")
sock.sendall(b"h ID NIL\r\n")
t.ok(b"h OK" in tagged(sock, b"h"), "ID before TLS: OK")
sock.close()

time.sleep(0.3)
t.is_(getattr(peer, "connections", 0), 0,
      "the backend never got a connection before TLS")
t.is_(peer.received, b"", "the backend received nothing")
log = g.log()
secrets = [ALICE_PW.encode("utf-8").decode("latin-1"), ALICE_PW, BOB_PW,
           "s3cret pass", mailstack.sasl_plain(ALICE, ALICE_PW)]
t.ok(not [s for s in secrets if s in log],
     "no password or SASL payload in the -vv log")
peer.stop()

# ------------------------------- pipelined plaintext behind STARTTLS

dovecot = mailstack.Dovecot(os.path.join(base, "dovecot"), certdir)
dovecot.start()
g = gateway.Gateway("mailgate-imap-starttls", base, gateway.imap_settings(
    certdir, "127.0.0.1", dovecot.imap_port, "starttls")).start()
before = len(g.summaries())
sock = g.connect()
gateway.read_until(sock, b"\r\n")
smuggled = b"b LOGIN %s %s\r\n" % (BOB.encode(), BOB_PW.encode())
sock.sendall(b"a STARTTLS\r\n" + smuggled)
plain = tagged(sock, b"a")
t.ok(lines(plain)[0].startswith(b"a OK"), "STARTTLS accepted")
t.is_(lines(plain)[1:], [b""], "nothing after the go-ahead in plaintext")
sock = ctx.wrap_socket(sock, server_hostname="localhost")
after = quiet(sock, 1.0)
t.is_(after, b"", "nothing arrives unasked inside TLS")
sock.sendall(b"c SELECT INBOX\r\n")
reply = tagged(sock, b"c")
t.ok(reply.startswith(b"c BAD") or reply.startswith(b"c NO"),
     "not logged in: the pipelined LOGIN did not run") or t.diag(reply)
sock.sendall(b"d CAPABILITY\r\n")
caps = tagged(sock, b"d")
t.ok(b"d OK" in caps and b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps,
     "the client's own CAPABILITY works, from the backend, filtered")
sock.sendall(b"e STARTTLS\r\n")
t.ok(tagged(sock, b"e").startswith(b"e BAD"), "STARTTLS inside TLS: BAD")
sock.sendall(b"f LOGIN %s %s\r\n" % (BOB.encode(), BOB_PW.encode()))
t.ok(b"f OK" in tagged(sock, b"f"), "the client's own LOGIN works")
sock.sendall(b"g LOGOUT\r\n")
transcript = after + reply + caps + tagged(sock, b"g")
sock.close()
t.ok(not [x for x in lines(plain + transcript) if x.startswith(b"b ")],
     "no response to the pipelined command, ever")
s = session_summary(g, before)
t.is_(s.get("login"), "ok", "summary: login=ok")
t.is_(s.get("status"), "0", "summary: status=0")
t.ok("event=discard bytes=%d " % len(smuggled) in g.log(),
     "the discarded plaintext is logged with its size")
t.ok(BOB_PW not in g.log(), "no password in the log")

# ------------------------------------------------- STARTTLS on 993

g = gateway.Gateway("mailgate-imaps", base, gateway.imap_settings(
    certdir, "127.0.0.1", dovecot.imaps_port, "tls")).start()
sock = ctx.wrap_socket(g.connect(), server_hostname="localhost")
gateway.read_until(sock, b"\r\n")
sock.sendall(b"a STARTTLS\r\n")
t.ok(tagged(sock, b"a").startswith(b"a BAD"), "imaps: STARTTLS is BAD")
sock.sendall(b"b LOGIN %s %s\r\n" % (BOB.encode(), BOB_PW.encode()))
t.ok(b"b OK" in tagged(sock, b"b"), "imaps: the session goes on")
sock.sendall(b"c LOGOUT\r\n")
tagged(sock, b"c")
sock.close()

t.done()
