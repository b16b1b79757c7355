#!/usr/bin/python3
"""Abrupt ends: half-closes lose nothing, resets and SIGTERM end cleanly,
and a backend that drops never yields a made-up success.

A client that shuts its write side after QUIT or LOGOUT (or after the
final dot while the backend is still thinking) still gets every reply.
A client reset (SO_LINGER 0) before the handshake, mid-handshake,
mid-DATA or mid-literal ends the session with one summary line and exit
status 1, and the backend never sees the final dot of a cut-off
message.  A backend that drops during AUTH, LOGIN, DATA or a literal of
its response gets the client a 421 or * BYE [UNAVAILABLE] where the
protocol allows one, never a success, and status 111.  SIGTERM before
TLS, mid-handshake, while the backend leg is set up, during login and
during the relay ends with one summary line, reason terminated, exit
status 111, and a 421 or * BYE where the protocol allows one.

Each gateway is started once per connection with the accepted TCP
socket as stdin and stdout, as inetd does, so that its PID and exit
status are at hand; backends are scripted.
"""

import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import direct  # noqa: E402
from direct import smtp_reply, tagged, until_closed  # noqa: E402
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
ctx = ms.client_context(certdir)
backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
backend_ctx.load_cert_chain(os.path.join(certdir, "backend.pem"),
                            os.path.join(certdir, "backend-key.pem"))
SMTP_PROGS = ("mailgate-smtp-starttls", "mailgate-smtps")
IMAP_PROGS = ("mailgate-imap-starttls", "mailgate-imaps")

# ------------------------------------------------------------ processes

def Run(prog, settings):
    return direct.Run(prog, settings, base)


def smtp_settings(port, security="tls", **more):
    more.setdefault("hostname", "gw.example.test")
    return gw.smtp_settings(certdir, "localhost", port, security, **more)


def imap_settings(port, security="tls", **more):
    more.setdefault("hostname", "gw.example.test")
    return gw.imap_settings(certdir, "localhost", port, security, **more)


def one_summary(run, name):
    found = run.summaries()
    t.is_(len(found), 1, name + ": exactly one summary line")
    return found[0] if found else {}


# ----------------------------------------------------- scripted backends

def nodelay(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


SMTP_ANSWERS = {
    b"EHLO": b"250-fake.example\r\n250 AUTH PLAIN\r\n",
    b"MAIL": b"250 2.1.0 ok\r\n", b"RCPT": b"250 2.1.5 ok\r\n",
    b"NOOP": b"250 2.0.0 ok\r\n", b"QUIT": b"221 2.0.0 bye\r\n",
    b"AUTH": b"235 2.7.0 ok\r\n", b"DATA": b"354 go ahead\r\n",
}


def smtp_backend(script=None, greet=True):
    """An SMTP server over implicit TLS.  script maps a verb (or DOT,
    the final dot) to what it does instead of answering: "drop" closes
    at once, "hold" waits silently until peer.release, a number delays
    the answer that many seconds.  Everything it reads is kept in
    peer.received; peer.seen is set for each verb it got."""
    script = script or {}

    def handler(peer, sock):
        peer.connections += 1
        nodelay(sock)
        tls = backend_ctx.wrap_socket(sock, server_side=True)
        if not greet:
            peer.seen.add(b"CONNECT")
            peer.release.wait(15)
            return
        tls.sendall(b"220 fake.example ESMTP\r\n")
        while True:
            line = peer.recv_line(tls)
            if not line:
                return
            verb = line[:4].upper()
            peer.seen.add(verb)
            if verb == b"DATA" and script.get(b"DATA") != "drop":
                tls.sendall(SMTP_ANSWERS[b"DATA"])
                if script.get(b"BODY") == "drop":
                    peer.recv_some(tls, 0.2)
                    return
                while not peer.received.endswith(b"\r\n.\r\n"):
                    if not peer.recv_line(tls):
                        return
                verb = b"DOT"
                peer.seen.add(verb)
            action = script.get(verb)
            if action == "drop":
                return
            if action == "hold":
                peer.release.wait(15)
                return
            if isinstance(action, (int, float)):
                time.sleep(action)
            tls.sendall(b"250 2.0.0 queued\r\n" if verb == b"DOT" else
                        SMTP_ANSWERS.get(verb, b"500 5.5.2 what\r\n"))
            if verb == b"QUIT":
                return
    return handler


def imap_backend(script=None, greet=True):
    """An IMAP server over implicit TLS, scripted like smtp_backend;
    FETCH answers with a 100-byte literal, which "cut" ends after 10
    bytes.  A synchronising literal from the client is invited."""
    script = script or {}

    def handler(peer, sock):
        peer.connections += 1
        nodelay(sock)
        tls = backend_ctx.wrap_socket(sock, server_side=True)
        if not greet:
            peer.seen.add(b"CONNECT")
            peer.release.wait(15)
            return
        tls.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        while True:
            line = peer.recv_line(tls)
            if not line:
                return
            tag, _, rest = line.partition(b" ")
            verb = rest.split(b" ")[0].strip().upper()
            peer.seen.add(verb)
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m and script.get(verb) != "hold":
                tls.sendall(b"+ go on\r\n")
                want = len(peer.received) + int(m.group(1))
                while len(peer.received) < want:
                    chunk = tls.recv(want - len(peer.received))
                    if not chunk:
                        return
                    peer.received += chunk
                peer.recv_line(tls)
            action = script.get(verb)
            if action == "drop":
                return
            if action == "hold":
                peer.release.wait(15)
                return
            if verb == b"FETCH":
                tls.sendall(b"* 1 FETCH (BODY[] {100}\r\n" + b"y" * 10)
                if action == "cut":
                    time.sleep(0.1)
                    return
                tls.sendall(b"y" * 90 + b")\r\n")
            if verb == b"LOGOUT":
                tls.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return
            tls.sendall(tag + b" OK done\r\n")
    return handler


def peer_for(handler):
    peer = gw.ScriptedPeer(handler)
    peer.connections = 0
    peer.seen = set()
    peer.release = threading.Event()
    return peer


def end_peer(peer):
    """Stop a peer; a thread still in accept() is woken first."""
    peer.release.set()
    if peer.connections == 0:
        try:
            socket.create_connection(("127.0.0.1", peer.port),
                                     timeout=2).close()
        except OSError:
            pass
    peer.thread.join(10)
    peer.stop()


def settings_for(prog, port):
    make = gw.smtp_settings if prog in SMTP_PROGS else gw.imap_settings
    return make(certdir, "localhost", port, "tls",
                hostname="gw.example.test")


def client_tls(run):
    """TLS with the gateway (after STARTTLS on 587 and 143), greeting
    inside TLS read on 465 and 993."""
    sock = run.sock
    nodelay(sock)
    if run.prog == "mailgate-smtp-starttls":
        smtp_reply(sock)
        sock.sendall(b"STARTTLS\r\n")
        smtp_reply(sock)
    elif run.prog == "mailgate-imap-starttls":
        tagged(sock, b"*")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    if run.prog == "mailgate-smtps":
        smtp_reply(tls)
    elif run.prog == "mailgate-imaps":
        tagged(tls, b"*")
    return tls


def half_close(sock):
    """End our sending side at the TCP level; a TLS session on sock
    stays usable for reading."""
    dup = socket.socket(fileno=os.dup(sock.fileno()))
    dup.shutdown(socket.SHUT_WR)
    dup.close()


def reset(sock):
    """Close with a TCP reset."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def client_hello_part():
    """The first half of a real ClientHello."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[:len(hello) // 2]


def ended(run, name, rc, reason=None):
    got = run.finish()
    t.ok(got == rc, "%s: exit status %d" % (name, rc)) \
        or t.diag("exit status %r" % got)
    s = one_summary(run, name)
    t.ok(s.get("status") == str(rc), "%s: summary status %d" % (name, rc)) \
        or t.diag(s)
    if reason is not None:
        t.ok(reason in s.get("reason", ""), "%s: reason says %s"
             % (name, reason)) or t.diag(s.get("reason"))
    t.ok("Sanitizer" not in run.log() and "runtime error" not in run.log(),
         name + ": no sanitizer report")
    return s

# ========================================================== half-closes

for prog in SMTP_PROGS + IMAP_PROGS:
    smtp = prog in SMTP_PROGS
    name = prog[9:]
    if prog.endswith("starttls"):
        label = name + ", half-close before TLS"
        peer = peer_for(smtp_backend() if smtp else imap_backend())
        run = Run(prog, settings_for(prog, peer.port))
        sock = run.sock
        if smtp:
            smtp_reply(sock)
            sock.sendall(b"QUIT\r\n")
        else:
            tagged(sock, b"*")
            sock.sendall(b"a LOGOUT\r\n")
        sock.shutdown(socket.SHUT_WR)
        seen = until_closed(sock)
        t.ok(seen.startswith(b"221 ") if smtp else
             seen.startswith(b"* BYE") and b"a OK" in seen,
             label + ": the reply to QUIT/LOGOUT arrives") or t.diag(seen)
        ended(run, label, 0)
        end_peer(peer)
    label = name + ", half-close after QUIT/LOGOUT inside TLS"
    peer = peer_for(smtp_backend({b"DOT": 1.0}) if smtp else
                    imap_backend())
    run = Run(prog, settings_for(prog, peer.port))
    tls = client_tls(run)
    if smtp:
        tls.sendall(b"EHLO client.example\r\nMAIL FROM:<a@example.test>"
                    b"\r\n")
        smtp_reply(tls)
        smtp_reply(tls)
        for line in (b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n"):
            tls.sendall(line)
            smtp_reply(tls)
        tls.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        half_close(tls)
        seen = until_closed(tls)
        t.ok(seen == b"250 2.0.0 queued\r\n221 2.0.0 bye\r\n", label +
             ": the slow 250 for the message and the 221 both arrive") \
            or t.diag(seen)
    else:
        tls.sendall(b"a LOGIN user pw\r\nb FETCH 1 BODY[]\r\nc LOGOUT\r\n")
        half_close(tls)
        seen = until_closed(tls)
        t.ok(seen.startswith(b"a OK") and b"y" * 100 + b")\r\nb OK" in seen
             and seen.endswith(b"* BYE bye\r\nc OK done\r\n"),
             label + ": every response arrives") or t.diag(seen)
    tls.close()
    ended(run, label, 0)
    end_peer(peer)


# ============================================================ resets

for prog in SMTP_PROGS + IMAP_PROGS:
    smtp = prog in SMTP_PROGS
    name = prog[9:]
    for when in ("before the handshake", "mid-handshake"):
        label = "%s, reset %s" % (name, when)
        peer = peer_for(smtp_backend() if smtp else imap_backend())
        run = Run(prog, settings_for(prog, peer.port))
        sock = run.sock
        if prog == "mailgate-smtp-starttls":
            smtp_reply(sock)
            sock.sendall(b"STARTTLS\r\n")
            smtp_reply(sock)
        elif prog == "mailgate-imap-starttls":
            tagged(sock, b"*")
            sock.sendall(b"s STARTTLS\r\n")
            tagged(sock, b"s")
        if when == "mid-handshake":
            sock.sendall(client_hello_part())
        time.sleep(0.2)
        reset(sock)
        ended(run, label, 1)
        connections = peer.connections
        end_peer(peer)
        t.is_(connections, 0, label + ": no backend connection")

    label = "%s, reset mid-%s" % (name, "DATA" if smtp else "literal")
    peer = peer_for(smtp_backend() if smtp else imap_backend())
    run = Run(prog, settings_for(prog, peer.port))
    tls = client_tls(run)
    if smtp:
        for line in (b"EHLO client.example\r\n", b"MAIL FROM:<a@example."
                     b"test>\r\n", b"RCPT TO:<b@example.test>\r\n",
                     b"DATA\r\n"):
            tls.sendall(line)
            smtp_reply(tls)
        tls.sendall(b"Subject: cut\r\n\r\nfirst half\r\n")
    else:
        tls.sendall(b"a LOGIN {4}\r\n")
        tagged(tls, b"+")
        tls.sendall(b"us")
    time.sleep(0.3)
    reset(tls)
    ended(run, label, 1, "client")
    end_peer(peer)
    if smtp:
        t.ok(b"first half" in peer.received and
             not peer.received.endswith(b"\r\n.\r\n") and
             b"DOT" not in peer.seen,
             label + ": the backend never saw a final dot") \
            or t.diag(peer.received[-80:])
    else:
        t.ok(peer.received.endswith(b"a LOGIN {4}\r\nus"),
             label + ": the backend got only the part sent") \
            or t.diag(peer.received)


# ================================================ the backend drops

def smtp_to_data(tls, body):
    seen = b""
    for line in (b"EHLO client.example\r\n", b"MAIL FROM:<a@example.test>"
                 b"\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n"):
        tls.sendall(line)
        seen += smtp_reply(tls)
    try:
        tls.sendall(body)
    except OSError:
        pass
    return seen


for prog in SMTP_PROGS:
    name = prog[9:]
    label = name + ", backend drops on AUTH"
    peer = peer_for(smtp_backend({b"AUTH": "drop"}))
    run = Run(prog, settings_for(prog, peer.port))
    tls = client_tls(run)
    tls.sendall(b"EHLO client.example\r\n")
    smtp_reply(tls)
    tls.sendall(b"AUTH PLAIN " + ms.sasl_plain("u", "p").encode() + b"\r\n")
    seen = until_closed(tls)
    t.ok(re.fullmatch(rb"421 4\.\d\.\d [^\r\n]*\r\n", seen), label +
         ": the client gets 421") or t.diag(seen)
    ended(run, label, 111)
    end_peer(peer)

    label = name + ", backend drops mid-DATA"
    peer = peer_for(smtp_backend({b"BODY": "drop"}))
    run = Run(prog, settings_for(prog, peer.port))
    tls = client_tls(run)
    smtp_to_data(tls, b"Subject: x\r\n\r\nline\r\n")
    time.sleep(0.5)
    try:
        tls.sendall(b"more\r\n.\r\n")
    except OSError:
        pass
    seen = until_closed(tls)
    t.ok(b"421 4." in seen and not re.search(rb"(^|\n)250", seen),
         label + ": a 421, never a 250") or t.diag(seen)
    ended(run, label, 111)
    end_peer(peer)

for prog in IMAP_PROGS:
    name = prog[9:]
    label = name + ", backend drops on LOGIN"
    peer = peer_for(imap_backend({b"LOGIN": "drop"}))
    run = Run(prog, settings_for(prog, peer.port))
    tls = client_tls(run)
    tls.sendall(b"a LOGIN user pw\r\n")
    seen = until_closed(tls)
    t.ok(b"a OK" not in seen, label + ": no OK invented")
    t.ok(seen.startswith(b"* BYE [UNAVAILABLE]"), label + ": * BYE "
         "[UNAVAILABLE]") or t.diag(seen)
    ended(run, label, 111)
    end_peer(peer)

    label = name + ", backend drops inside a FETCH literal"
    peer = peer_for(imap_backend({b"FETCH": "cut"}))
    run = Run(prog, settings_for(prog, peer.port))
    tls = client_tls(run)
    tls.sendall(b"a LOGIN user pw\r\n")
    tagged(tls, b"a")
    tls.sendall(b"b FETCH 1 BODY[]\r\n")
    seen = until_closed(tls)
    t.ok(b"b OK" not in seen, label + ": no OK invented") or t.diag(seen)
    ended(run, label, 111)
    end_peer(peer)


# ============================================================ SIGTERM

def term(run, name, expect, wait_for=None, peer=None):
    """SIGTERM the gateway once peer has seen wait_for; what the client
    gets must match expect (a regex; None: not looked at)."""
    if wait_for is not None:
        try:
            ms.wait_until(lambda: wait_for in peer.seen, 10, "the backend")
        except TimeoutError:
            t.diag("the backend never saw %r" % wait_for)
    time.sleep(0.2)
    run.proc.send_signal(signal.SIGTERM)


def sigterm_case(prog, state, expect):
    smtp = prog in SMTP_PROGS
    label = "%s, SIGTERM %s" % (prog[9:], state)
    script = {b"AUTH": "hold", b"LOGIN": "hold"}
    handler = (smtp_backend if smtp else imap_backend)(
        script, greet=(state != "setting up the backend leg"))
    peer = peer_for(handler)
    run = Run(prog, settings_for(prog, peer.port))
    sock = run.sock
    wait_for = None
    if state == "before TLS":
        (smtp_reply if smtp else lambda s: tagged(s, b"*"))(sock)
    elif state == "mid-handshake":
        if prog.endswith("starttls"):
            if smtp:
                smtp_reply(sock)
                sock.sendall(b"STARTTLS\r\n")
                smtp_reply(sock)
            else:
                tagged(sock, b"*")
                sock.sendall(b"s STARTTLS\r\n")
                tagged(sock, b"s")
        sock.sendall(client_hello_part())
    else:
        sock = client_tls(run) if state != "setting up the backend leg" \
            or prog != "mailgate-imaps" else sock
        if state == "setting up the backend leg":
            if prog == "mailgate-imaps":
                sock.sendall(client_hello_part())  # never finished
                sock = None
            elif smtp:
                sock.sendall(b"EHLO client.example\r\n")
            wait_for = b"CONNECT"
        elif state == "during login":
            if smtp:
                sock.sendall(b"EHLO client.example\r\n")
                smtp_reply(sock)
                sock.sendall(b"AUTH PLAIN " +
                             ms.sasl_plain("u", "p").encode() + b"\r\n")
                wait_for = b"AUTH"
            else:
                sock.sendall(b"a LOGIN user pw\r\n")
                wait_for = b"LOGIN"
        elif state == "during the relay":
            if smtp:
                for line in (b"EHLO client.example\r\n",
                             b"MAIL FROM:<a@example.test>\r\n"):
                    sock.sendall(line)
                    smtp_reply(sock)
                wait_for = b"MAIL"
            else:
                sock.sendall(b"a AUTHENTICATE PLAIN " +
                             ms.sasl_plain("u", "p").encode() + b"\r\n")
                tagged(sock, b"a")
                wait_for = b"AUTHENTICATE"
    if sock is None:
        time.sleep(0.3)
        run.proc.send_signal(signal.SIGTERM)
        seen = None
    else:
        term(run, label, expect, wait_for, peer)
        seen = until_closed(sock)
    if expect is not None and seen is not None:
        t.ok(re.fullmatch(expect, seen), label + ": the client is told") \
            or t.diag(seen)
    ended(run, label, 111, "terminated")
    end_peer(peer)


SMTP_BYE = rb"421 4\.3\.2 [^\r\n]*\r\n"
IMAP_BYE = rb"\* BYE \[UNAVAILABLE\][^\r\n]*\r\n"
for prog in SMTP_PROGS + IMAP_PROGS:
    smtp = prog in SMTP_PROGS
    bye = SMTP_BYE if smtp else IMAP_BYE
    if prog.endswith("starttls"):
        sigterm_case(prog, "before TLS", bye)
    sigterm_case(prog, "mid-handshake", rb"(\x15\x03[\x00-\x04].*)?")
    sigterm_case(prog, "setting up the backend leg",
                 None if prog == "mailgate-imaps" else bye)
    sigterm_case(prog, "during login", bye)
    sigterm_case(prog, "during the relay", bye)

t.done()
