#!/usr/bin/python3
"""The backend leg fails closed: a response injected behind the
backend's STARTTLS go-ahead, a PREAUTH or BYE greeting, STARTTLS not
offered or refused, an untrusted, wrongly named or expired certificate,
or no backend at all.  Each ends with "* BYE [UNAVAILABLE]" to the
client, status 111 in the summary line, and nothing sent to the backend
in plaintext beyond STARTTLS."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from direct import tagged, until_closed  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
ctx = mailstack.client_context(certdir)
PROGS = ("mailgate-imaps", "mailgate-imap-starttls")


def client_view(g):
    """What a client sees over TLS from g; on 143 after STARTTLS."""
    sock = g.connect()
    if g.prog == "mailgate-imap-starttls":
        gateway.read_until(sock, b"\r\n")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    sock = ctx.wrap_socket(sock, server_hostname="localhost")
    data = until_closed(sock)
    sock.close()
    return data


def check_failure(name, g, verify=None, reason=None):
    """One client session through g must end unavailable."""
    before = len(g.summaries())
    seen = client_view(g)
    t.ok(seen.startswith(b"* BYE [UNAVAILABLE]"),
         "%s: the client gets * BYE [UNAVAILABLE]" % name) or t.diag(seen)
    t.ok(b"* OK" not in seen and b"PREAUTH" not in seen,
         "%s: no greeting or session reaches the client" % name)
    found = g.wait_summaries(before + 1)
    s = found[before] if len(found) > before else {}
    t.is_(s.get("status"), "111", "%s: status=111" % name)
    t.ok(s.get("login") != "ok", "%s: login is not ok" % name)
    if verify:
        t.is_(s.get("verify"), verify, "%s: verify=%s" % (name, verify))
    if reason:
        t.ok(reason in s.get("reason", ""),
             "%s: the reason mentions %r" % (name, reason)) \
            or t.diag(s.get("reason"))
    return s


def gateways_for(port, security):
    return [gateway.Gateway(prog, base, gateway.imap_settings(
        certdir, "127.0.0.1", port, security)).start() for prog in PROGS]


# --------------------------------------------------- scripted backends


def scripted(greeting, answer):
    """A plaintext backend: greeting, then answer(tag) to the first
    command (STARTTLS), then it listens for what else comes."""
    def handler(peer, sock):
        sock.sendall(greeting)
        peer.first = peer.recv_line(sock) if answer else b""
        if answer and peer.first:
            sock.sendall(answer(peer.first.split(b" ")[0]))
        peer.rest = peer.recv_some(sock, 1.0)
    return handler


SCENARIOS = [
    ("response injected after the backend's STARTTLS go-ahead",
     b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n",
     lambda tag: tag + b" OK Begin TLS negotiation now\r\n"
     b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n",
     "after its STARTTLS"),
    ("PREAUTH greeting over plaintext",
     b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in already\r\n",
     None, "PREAUTH"),
    ("BYE greeting",
     b"* BYE Too busy\r\n", None, None),
    ("STARTTLS not offered (BAD to it)",
     b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
     lambda tag: tag + b" BAD Unknown command\r\n", "STARTTLS"),
    ("STARTTLS refused (NO)",
     b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n",
     lambda tag: tag + b" NO Not now\r\n", "STARTTLS"),
]

for name, greeting, answer, reason in SCENARIOS:
    peer = gateway.ScriptedPeer(scripted(greeting, answer),
                                connections=len(PROGS))
    for g in gateways_for(peer.port, "starttls"):
        label = "%s, %s" % (g.prog, name)
        peer.first = peer.rest = None
        check_failure(label, g, reason=reason)
        mailstack.wait_until(lambda: peer.rest is not None, 5,
                             "the scripted backend")
        if answer:
            t.ok(peer.first.endswith(b" STARTTLS\r\n"),
                 "%s: the gateway's first command is STARTTLS" % label)
        t.is_(peer.rest, b"", "%s: nothing more reaches the backend"
              % label)
    peer.stop()
    t.is_(peer.errors, [], "%s: the scripted backend ran" % name)


# -------------------------------------------------- certificates

for kind, why in (("untrusted", "not trusted"),
                  ("wrongname", "name mismatch"), ("expired", "expired")):
    dovecot = mailstack.Dovecot(
        os.path.join(base, "dovecot-" + kind), certdir,
        cert=os.path.join(certdir, kind + ".pem"),
        key=os.path.join(certdir, kind + "-key.pem"))
    dovecot.start()
    for security, port in (("starttls", dovecot.imap_port),
                           ("tls", dovecot.imaps_port)):
        for g in gateways_for(port, security):
            check_failure("%s, backend %s, %s certificate"
                          % (g.prog, security, kind), g, verify="failed",
                          reason="certificate " + why)
    dovecot.stop()

# --------------------------------------------------- nobody there

down = mailstack.free_port()
for security in ("starttls", "tls"):
    for g in gateways_for(down, security):
        check_failure("%s, backend %s, nothing listening" % (g.prog,
                                                             security), g)

t.done()
