#!/usr/bin/python3
"""Literals are carried exactly, and only as data: ID with literal
arguments, APPEND with synchronising and non-synchronising ({N+})
literals, FETCH of a message whose lines look like commands and tagged
responses, literals in both directions before login that hold text a
parser would act on (a fake tagged OK to LOGIN, a capability list,
STARTTLS and LOGOUT), and a synchronising literal the backend refuses
before its "+"."""

import os
import re
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from direct import quiet, tagged  # noqa: E402
from mailstack import ALICE, ALICE_PW  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
ctx = mailstack.client_context(certdir)

# A message whose lines look like protocol; CRLF throughout, as Dovecot
# stores it with mail_save_crlf.
TRAPS = (b"a1 OK LOGIN done\r\n"
         b"* BYE [UNAVAILABLE] fake\r\n"
         b"+ go ahead\r\n"
         b"x STARTTLS\r\n"
         b"c3 LOGOUT\r\n"
         b"y APPEND INBOX {5}\r\n"
         b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n")


def message(n):
    return (b"From: alice@example.test\r\nTo: alice@example.test\r\n"
            b"Subject: literal %d\r\n\r\n" % n + TRAPS +
            b"line without a newline at the end")


def until(sock, marker, timeout=10):
    return gateway.read_until(sock, marker, timeout)


def open_tls(g):
    sock = g.connect()
    if g.prog == "mailgate-imap-starttls":
        until(sock, b"\r\n")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    sock = ctx.wrap_socket(sock, server_hostname="localhost")
    if g.prog == "mailgate-imaps":
        until(sock, b"\r\n")
    return sock


def tags_in(data):
    return [line.split(b" ")[0] for line in data.split(b"\r\n")
            if line and not line.startswith((b"*", b"+"))]


def fetched_literal(data):
    """The first literal of a FETCH response."""
    m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", data)
    if not m:
        return None
    return data[m.end():m.end() + int(m.group(1))]


def fetch_all(sock, tag, count):
    sock.sendall(tag + b" FETCH 1:%d BODY[]\r\n" % count)
    data = tagged(sock, tag, 20)
    parts = re.split(rb"(?=\* \d+ FETCH )", data)
    return [fetched_literal(p) for p in parts if p.startswith(b"* ")]


# ------------------------------------------------ through Dovecot

dovecot = mailstack.Dovecot(os.path.join(base, "dovecot"), certdir)
dovecot.start()
appended = 0
for prog, security, port in (
        ("mailgate-imap-starttls", "starttls", dovecot.imap_port),
        ("mailgate-imaps", "tls", dovecot.imaps_port)):
    g = gateway.Gateway(prog, base, gateway.imap_settings(
        certdir, "127.0.0.1", port, security)).start()
    name = "%s, backend %s" % (prog, security)
    before = len(g.summaries())
    sock = open_tls(g)

    # ID with synchronising literals, before login.
    sock.sendall(b"i1 ID ({4}\r\n")
    cont1 = until(sock, b"\r\n")
    sock.sendall(b"name {8}\r\n")
    cont2 = until(sock, b"\r\n")
    sock.sendall(b"mailgate)\r\n")
    reply = tagged(sock, b"i1")
    t.ok(cont1.startswith(b"+") and cont2.startswith(b"+"),
         "%s: ID: the backend's + for each literal" % name)
    t.ok(b"* ID (" in reply and b"\r\ni1 OK" in reply,
         "%s: ID with literal arguments answered" % name) or t.diag(reply)

    # A non-synchronising literal that looks like two commands.
    inner = b"j2 STARTTLS\r\nj3 LOGOUT\r\n"
    sock.sendall(b'j1 ID ("x" {%d+}\r\n%s)\r\n' % (len(inner), inner))
    reply = tagged(sock, b"j1") + quiet(sock, 0.5)
    t.is_(tags_in(reply), [b"j1"],
          "%s: a literal that looks like commands stays data" % name)

    # Log in with a literal password, then APPEND both ways.
    quoted = ALICE.replace('"', '\\"').encode()
    pw = ALICE_PW.encode()
    sock.sendall(b'l1 LOGIN "%s" {%d}\r\n' % (quoted, len(pw)))
    cont = until(sock, b"\r\n")
    sock.sendall(pw + b"\r\n")
    reply = tagged(sock, b"l1")
    t.ok(cont.startswith(b"+") and b"l1 OK" in reply,
         "%s: LOGIN with a literal password" % name)

    first, second = message(appended + 1), message(appended + 2)
    sock.sendall(b"m1 APPEND INBOX {%d}\r\n" % len(first))
    cont = until(sock, b"\r\n")
    t.ok(cont.startswith(b"+"), "%s: APPEND {N}: + first" % name)
    sock.sendall(first + b"\r\n")
    t.ok(b"m1 OK" in tagged(sock, b"m1"), "%s: APPEND {N} stored" % name)
    sock.sendall(b"m2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(second), second))
    reply = tagged(sock, b"m2")
    t.ok(b"m2 OK" in reply and not reply.startswith(b"+"),
         "%s: APPEND {N+} stored, no + asked for" % name)
    appended += 2

    sock.sendall(b"n1 SELECT INBOX\r\n")
    t.ok(b"n1 OK" in tagged(sock, b"n1"), "%s: SELECT" % name)
    bodies = fetch_all(sock, b"n2", appended)
    t.is_(bodies[-2:], [first, second],
          "%s: FETCH returns both messages byte for byte" % name)
    sock.sendall(b"n3 LOGOUT\r\n")
    tagged(sock, b"n3")
    sock.close()
    found = g.wait_summaries(before + 1)
    s = found[before] if len(found) > before else {}
    t.is_((s.get("login"), s.get("status")), ("ok", "0"),
          "%s: login=ok status=0" % name)
    log = g.log()
    t.ok(ALICE_PW not in log and "s3cret" not in log,
         "%s: the literal password is not logged" % name)
dovecot.stop()

# -------------------------------------------- scripted backend, pre-login

FAKE = (b"a1 OK LOGIN completed\r\n"
        b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n")
LOGIN_REPLY = (b'* ID ("note" {%d}\r\n%s)\r\n' % (len(FAKE), FAKE) +
               b"a1 NO [AUTHENTICATIONFAILED] wrong\r\n")
CLIENT_LITERAL = b"b1 STARTTLS\r\nb2 LOGOUT\r\n"


def backend(peer, sock):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(os.path.join(certdir, "backend.pem"),
                           os.path.join(certdir, "backend-key.pem"))
    sock = server.wrap_socket(sock, server_side=True)
    sock.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] scripted\r\n")
    while True:
        line = peer.recv_line(sock)
        words = line.split()
        if len(words) < 2:
            return
        tag, verb = words[0], words[1].upper()
        if verb == b"LOGIN":
            sock.sendall(LOGIN_REPLY)
        elif verb == b"CAPABILITY":
            sock.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n"
                         + tag + b" OK done\r\n")
        elif verb == b"APPEND":
            sock.sendall(tag + b" NO [AUTHENTICATIONFAILED] log in first"
                         b"\r\n")
        elif verb == b"ID":
            sock.sendall(b"+ go on\r\n")
            data = b""
            while not data.endswith(b")\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            peer.received += data
            sock.sendall(b"* ID NIL\r\n" + tag + b" OK ID done\r\n")
        else:
            sock.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
            return


peer = gateway.ScriptedPeer(backend)
g = gateway.Gateway("mailgate-imaps", base, gateway.imap_settings(
    certdir, "127.0.0.1", peer.port, "tls")).start()
before = len(g.summaries())
sock = open_tls(g)
sock.sendall(b"a1 LOGIN x y\r\n")
t.is_(tagged(sock, b"a1") + quiet(sock, 0.3), LOGIN_REPLY,
      "backend literal before login relayed exactly, unfiltered")
sock.sendall(b"a2 CAPABILITY\r\n")
t.is_(tagged(sock, b"a2"), b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
      b"a2 OK done\r\n", "the fake OK in the literal did not log in: "
      "capabilities are still filtered")
sock.sendall(b"a3 ID ({4}\r\n")
cont = until(sock, b"\r\n")
t.is_(cont, b"+ go on\r\n", "the backend's + reaches the client")
rest = b"name {%d+}\r\n%s)\r\n" % (len(CLIENT_LITERAL), CLIENT_LITERAL)
sock.sendall(b"abcd " + rest)
reply = tagged(sock, b"a3") + quiet(sock, 0.3)
t.is_(reply, b"* ID NIL\r\na3 OK ID done\r\n",
      "client literals holding STARTTLS and LOGOUT: one answer, the "
      "backend's")
sock.sendall(b"a4 APPEND INBOX {10}\r\n")
reply = tagged(sock, b"a4") + quiet(sock, 0.3)
t.is_(reply, b"a4 NO [AUTHENTICATIONFAILED] log in first\r\n",
      "a literal refused before its +: the tagged NO, no +")
sock.sendall(b"a5 CAPABILITY\r\n")
t.ok(tagged(sock, b"a5").endswith(b"a5 OK done\r\n"),
     "the session goes on after the refused literal")
sock.sendall(b"a6 LOGOUT\r\n")
tagged(sock, b"a6")
sock.close()
found = g.wait_summaries(before + 1)
s = found[before] if len(found) > before else {}
t.is_(s.get("login"), "failed", "summary: login=failed")
t.is_(s.get("status"), "0", "summary: status=0")
mailstack.wait_until(lambda: not peer.thread.is_alive(), 10,
                     "the scripted backend")
t.is_(peer.errors, [], "the scripted backend saw no errors")
t.ok(b"a3 ID ({4}\r\nabcd " + rest in peer.received,
     "the backend got the ID command and its literals byte for byte")
t.ok(b"a4 APPEND INBOX {10}\r\na5 CAPABILITY\r\n" in peer.received,
     "the refused literal was never sent to the backend")
t.done()
