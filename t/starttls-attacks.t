#!/usr/bin/python3
"""STARTTLS cannot be bypassed, stripped or injected into, on either leg.

Client leg (587, 143): plaintext sent after STARTTLS, in the same write,
split over writes, in lower case, with bare LF line ends, or in a later
write before the handshake, is never executed; STARTTLS with arguments,
twice, inside TLS or on the implicit ports (465, 993) is refused and
never reaches the backend.

Backend leg (every program): bytes the backend sends after its go-ahead,
in the same write or just before its ServerHello; responses injected
behind an IMAP go-ahead; STARTTLS missing, refused (454 is covered
elsewhere; 501, 554, NO, BAD), answered with a continuation or a foreign
tag; an EHLO reply that never ends; EHLO refused without a HELO
fallback; an [ALERT] greeting in plaintext whose text must never reach
the client; a plaintext server on an implicit-TLS port.  Each failure
ends in 421 or * BYE [UNAVAILABLE] for the client, one summary line with
status 111, exit status 111, and nothing of the client's on the wire in
plaintext.

Every gateway here is started once per connection with the accepted
TCP socket as stdin and stdout, as inetd does, so that its exit status
is seen; the backends are scripted loopback servers.
"""

import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import direct  # noqa: E402
from direct import quiet, smtp_reply, tagged, until_closed  # noqa: E402
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
ctx = ms.client_context(certdir)
backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
backend_ctx.load_cert_chain(os.path.join(certdir, "backend.pem"),
                            os.path.join(certdir, "backend-key.pem"))
MARK = b"client.example"          # in every client command line
EVIL = b"evil@example.test"       # in every injected line


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

SMTP_ANSWERS = {
    b"EHLO": b"250-fake.example\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n",
    b"MAIL": b"250 2.1.0 ok\r\n", b"RCPT": b"250 2.1.5 ok\r\n",
    b"NOOP": b"250 2.0.0 ok\r\n", b"RSET": b"250 2.0.0 ok\r\n",
    b"QUIT": b"221 2.0.0 bye\r\n",
}


def smtp_serve(peer, tls):
    """A well-behaved SMTP server inside TLS; what it got is kept in
    peer.after_tls."""
    mark = len(peer.received)
    try:
        while True:
            line = peer.recv_line(tls)
            if not line:
                break
            verb = line[:4].upper()
            tls.sendall(SMTP_ANSWERS.get(verb, b"502 5.5.1 no\r\n"))
            if verb == b"QUIT":
                break
    finally:
        peer.after_tls = peer.received[mark:]


def smtp_backend(security="tls", ehlo=b"250-fake.example\r\n"
                 b"250 STARTTLS\r\n", go_ahead=b"220 2.0.0 go ahead\r\n",
                 later=b"", greeting=b"220 fake.example ESMTP\r\n"):
    """An SMTP backend.  With security tls it speaks TLS at once; with
    starttls it answers EHLO with ehlo and STARTTLS with go_ahead, and
    sends later in a write of its own just before its handshake; with
    plain it greets in plaintext on what should be a TLS port."""
    def handler(peer, sock):
        peer.connections += 1
        if security == "tls":
            tls = backend_ctx.wrap_socket(sock, server_side=True)
            tls.sendall(greeting)
            return smtp_serve(peer, tls)
        sock.sendall(greeting)
        while True:
            line = peer.recv_line(sock)
            if security == "plain" or not line:
                peer.recv_some(sock, 1)
                return
            if line.upper().startswith(b"EHLO"):
                sock.sendall(ehlo)
                if not ehlo.endswith(b"\r\n") or \
                        ehlo.rsplit(b"\r\n", 2)[-2][3:4] == b"-":
                    peer.recv_some(sock, 8)   # an unfinished reply
                    return
            elif line.upper() == b"STARTTLS\r\n":
                sock.sendall(go_ahead)
                if go_ahead.startswith(b"220"):
                    break
            else:
                return
        peer.before_tls = peer.received
        if later:
            time.sleep(0.3)
            sock.sendall(later)
        try:
            tls = backend_ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            peer.handshake_failed = True
            return
        smtp_serve(peer, tls)
    return handler


def imap_serve(peer, tls):
    """A well-behaved IMAP server inside TLS, logged out by default."""
    mark = len(peer.received)
    try:
        while True:
            line = peer.recv_line(tls)
            if not line:
                break
            tag, _, rest = line.partition(b" ")
            verb = rest.split(b" ")[0].strip().upper()
            if verb == b"CAPABILITY":
                tls.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
            if verb == b"LOGOUT":
                tls.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                break
            tls.sendall(tag + b" OK done\r\n")
    finally:
        peer.after_tls = peer.received[mark:]


IMAP_GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] fake ready\r\n"


def imap_backend(security="tls", greeting=IMAP_GREETING,
                 answer=lambda tag: tag + b" OK Begin TLS now\r\n",
                 later=b""):
    """An IMAP backend, like smtp_backend: answer(tag) is its whole
    reply to STARTTLS."""
    def handler(peer, sock):
        peer.connections += 1
        if security == "tls":
            tls = backend_ctx.wrap_socket(sock, server_side=True)
            tls.sendall(greeting)
            return imap_serve(peer, tls)
        sock.sendall(greeting)
        line = peer.recv_line(sock)
        if security == "plain" or not line:
            peer.recv_some(sock, 1)
            return
        tag = line.split(b" ")[0]
        reply = answer(tag)
        if reply:
            sock.sendall(reply)
        if not reply.startswith(tag + b" OK") or \
                not line.upper().endswith(b" STARTTLS\r\n"):
            peer.recv_some(sock, 1 if reply.endswith(b"\r\n") else 8)
            return
        peer.before_tls = peer.received
        if later:
            time.sleep(0.3)
            sock.sendall(later)
        try:
            tls = backend_ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            peer.handshake_failed = True
            return
        imap_serve(peer, tls)
    return handler


def peer_for(handler):
    peer = gw.ScriptedPeer(handler)
    peer.connections = 0
    peer.after_tls = peer.before_tls = None
    peer.handshake_failed = False
    return peer


def end_peer(peer):
    """Stop a peer; a thread still in accept() is woken first."""
    if peer.connections == 0:
        try:
            socket.create_connection(("127.0.0.1", peer.port),
                                     timeout=2).close()
        except OSError:
            pass
    peer.thread.join(10)
    peer.stop()


# ============================== client leg: plaintext behind STARTTLS

def smtp_client_injection(name, writes, later=None):
    """writes: the plaintext writes that carry STARTTLS and the
    injected line; later: a line sent after the 220, before the
    handshake (which must then fail)."""
    peer = peer_for(smtp_backend())
    run = Run("mailgate-smtp-starttls", smtp_settings(peer.port))
    sock = run.sock
    smtp_reply(sock)
    sock.sendall(b"EHLO " + MARK + b"\r\n")
    smtp_reply(sock)
    for i, chunk in enumerate(writes):
        sock.sendall(chunk)
        if i < len(writes) - 1:
            time.sleep(0.15)
    reply = smtp_reply(sock)
    t.ok(reply.startswith(b"220 "), name + ": STARTTLS gets 220") \
        or t.diag(reply)
    if later is not None:
        sock.sendall(later)
        rest = until_closed(sock, 5)
        t.ok(rest == b"" or rest.startswith(b"\x15\x03"),
             name + ": the gateway answers with a TLS alert at most") \
            or t.diag(rest[:200])
        t.ok(not re.search(rb"(^|\n)\d\d\d[ -]", rest),
             name + ": the injected line got no SMTP reply") \
            or t.diag(rest[:200])
        rc = run.finish()
        t.is_(rc, 1, name + ": exit status 1")
        s = one_summary(run, name)
        t.ok(s.get("status") == "1" and "client TLS handshake failed"
             in s.get("reason", ""), name + ": summary says the client "
             "handshake failed") or t.diag(s)
        connections = peer.connections
        end_peer(peer)
        t.is_(connections, 0, name + ": no backend connection")
        return
    t.is_(quiet(sock, 0.3), b"", name + ": no reply to the injected line")
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"EHLO " + MARK + b"\r\n")
    ehlo = smtp_reply(tls)
    t.ok(ehlo.startswith(b"250-fake.example\r\n"),
         name + ": the first reply inside TLS answers the client's EHLO") \
        or t.diag(ehlo)
    tls.sendall(b"QUIT\r\n")
    t.ok(smtp_reply(tls).startswith(b"221"), name + ": QUIT: 221")
    tls.close()
    rc = run.finish()
    t.is_(rc, 0, name + ": exit status 0")
    s = one_summary(run, name)
    t.is_(s.get("status"), "0", name + ": summary status 0")
    end_peer(peer)
    t.is_(peer.after_tls, b"EHLO " + MARK + b"\r\nQUIT\r\n",
          name + ": the backend got only the client's own TLS commands")
    t.ok(EVIL not in peer.received, name + ": the injected line never "
         "reached the backend")
    t.ok("event=discard" in run.log(), name + ": the discard is logged")


INJECT = b"MAIL FROM:<" + EVIL + b">\r\n"
smtp_client_injection("587, lower-case starttls + MAIL in one write",
                      [b"starttls\r\n" + INJECT])
smtp_client_injection("587, STARTTLS split, MAIL with its tail",
                      [b"STAR", b"TTLS\r\n" + INJECT])
smtp_client_injection("587, STARTTLS CR | LF + MAIL",
                      [b"STARTTLS\r", b"\n" + INJECT])
smtp_client_injection("587, bare LF: STARTTLS\\nMAIL\\n in one write",
                      [b"STARTTLS\nMAIL FROM:<" + EVIL + b">\n"])
smtp_client_injection("587, MAIL in a later write before the handshake",
                      [b"STARTTLS\r\n"], later=INJECT)


def imap_client_injection(name, writes, later=None):
    peer = peer_for(imap_backend())
    run = Run("mailgate-imap-starttls", imap_settings(peer.port))
    sock = run.sock
    tagged(sock, b"*")
    for i, chunk in enumerate(writes):
        sock.sendall(chunk)
        if i < len(writes) - 1:
            time.sleep(0.15)
    reply = tagged(sock, b"a")
    t.is_(reply[:5], b"a OK ", name + ": STARTTLS gets a OK")
    if later is not None:
        sock.sendall(later)
        rest = until_closed(sock, 5)
        t.ok(rest == b"" or rest.startswith(b"\x15\x03"),
             name + ": the gateway answers with a TLS alert at most") \
            or t.diag(rest[:200])
        t.ok(b"b " not in rest and b"* " not in rest,
             name + ": the injected command got no response") \
            or t.diag(rest[:200])
        t.is_(run.finish(), 1, name + ": exit status 1")
        s = one_summary(run, name)
        t.ok(s.get("status") == "1" and "client TLS handshake failed"
             in s.get("reason", ""), name + ": summary says the client "
             "handshake failed") or t.diag(s)
        connections = peer.connections
        end_peer(peer)
        t.is_(connections, 0, name + ": no backend connection")
        return
    t.is_(reply.split(b"\r\n", 1)[1] + quiet(sock, 0.3), b"",
          name + ": no response to the injected command")
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    t.is_(quiet(tls, 0.5), b"", name + ": nothing arrives unasked in TLS")
    tls.sendall(b"c NOOP\r\n")
    got = tagged(tls, b"c")
    tls.sendall(b"d LOGOUT\r\n")
    got += tagged(tls, b"d")
    t.ok(got.startswith(b"c OK") and b"d OK" in got,
         name + ": the client's own commands are answered") or t.diag(got)
    t.ok(b"b OK" not in got and b"b NO" not in got,
         name + ": never a response to the injected command")
    tls.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    s = one_summary(run, name)
    t.is_(s.get("login"), "none", name + ": login=none")
    end_peer(peer)
    t.is_(peer.after_tls, b"c NOOP\r\nd LOGOUT\r\n",
          name + ": the backend got only the client's own TLS commands")


ILOGIN = b"b LOGIN " + EVIL + b" pw\r\n"
imap_client_injection("143, lower-case starttls + LOGIN in one write",
                      [b"a starttls\r\n" + ILOGIN])
imap_client_injection("143, STARTTLS split, LOGIN with its tail",
                      [b"a STAR", b"TTLS\r\n" + ILOGIN])
imap_client_injection("143, bare LF: STARTTLS\\nLOGIN\\n in one write",
                      [b"a STARTTLS\nb LOGIN " + EVIL + b" pw\n"])
imap_client_injection("143, LOGIN in a later write before the handshake",
                      [b"a STARTTLS\r\n"], later=ILOGIN)


# ====================== client leg: STARTTLS with arguments, twice, TLS

peer = peer_for(smtp_backend())
run = Run("mailgate-smtp-starttls", smtp_settings(peer.port))
sock = run.sock
smtp_reply(sock)
sock.sendall(b"STARTTLS now\r\n")
t.ok(smtp_reply(sock).startswith(b"501 "), "587: STARTTLS with an "
     "argument: 501")
sock.sendall(b"NOOP\r\n")
t.ok(smtp_reply(sock).startswith(b"250 "), "587: the session goes on")
sock.sendall(b"STARTTLS\r\n")
smtp_reply(sock)
tls = ctx.wrap_socket(sock, server_hostname="localhost")
tls.sendall(b"EHLO " + MARK + b"\r\n")
smtp_reply(tls)
for line in (b"STARTTLS\r\n", b"starttls\r\n", b"STARTTLS now\r\n"):
    tls.sendall(line)
    reply = smtp_reply(tls)
    t.ok(reply.startswith(b"503 "), "587 inside TLS: %r: 503" % line) \
        or t.diag(reply)
tls.sendall(b"QUIT\r\n")
smtp_reply(tls)
tls.close()
t.is_(run.finish(), 0, "587: exit status 0")
end_peer(peer)
t.ok(b"STARTTLS" not in (peer.after_tls or b"x").upper(),
     "587: no STARTTLS of the client's reached the backend")

peer = peer_for(smtp_backend())
run = Run("mailgate-smtps", smtp_settings(peer.port))
tls = ctx.wrap_socket(run.sock, server_hostname="localhost")
smtp_reply(tls)
for line in (b"starttls\r\n", b"STARTTLS now\r\n"):
    tls.sendall(line)
    t.ok(smtp_reply(tls).startswith(b"503 "), "465: %r: 503" % line)
tls.sendall(b"EHLO " + MARK + b"\r\n")
smtp_reply(tls)
tls.sendall(b"STARTTLS\r\n")
t.ok(smtp_reply(tls).startswith(b"503 "), "465 after EHLO: STARTTLS: 503")
tls.sendall(b"QUIT\r\n")
smtp_reply(tls)
tls.close()
t.is_(run.finish(), 0, "465: exit status 0")
end_peer(peer)
t.ok(b"STARTTLS" not in (peer.after_tls or b"x").upper(),
     "465: no STARTTLS reached the backend")

peer = peer_for(imap_backend())
run = Run("mailgate-imap-starttls", imap_settings(peer.port))
sock = run.sock
tagged(sock, b"*")
sock.sendall(b"a STARTTLS now\r\n")
t.ok(tagged(sock, b"a").startswith(b"a BAD"), "143: STARTTLS with an "
     "argument: BAD")
sock.sendall(b"b STARTTLS\r\n")
tagged(sock, b"b")
tls = ctx.wrap_socket(sock, server_hostname="localhost")
for tag, line in ((b"c", b"c STARTTLS\r\n"), (b"d", b"d starttls\r\n"),
                  (b"e", b"e STARTTLS now\r\n")):
    tls.sendall(line)
    got = tagged(tls, tag)
    t.ok(got.startswith(tag + b" BAD"), "143 inside TLS: %r: BAD" % line) \
        or t.diag(got)
tls.sendall(b"f LOGOUT\r\n")
tagged(tls, b"f")
tls.close()
t.is_(run.finish(), 0, "143: exit status 0")
end_peer(peer)
t.is_(peer.after_tls, b"f LOGOUT\r\n",
      "143: none of the STARTTLS commands reached the backend")

peer = peer_for(imap_backend())
run = Run("mailgate-imaps", imap_settings(peer.port))
tls = ctx.wrap_socket(run.sock, server_hostname="localhost")
tagged(tls, b"*")
for tag, line in ((b"a", b"a starttls\r\n"), (b"b", b"b STARTTLS now\r\n")):
    tls.sendall(line)
    t.ok(tagged(tls, tag).startswith(tag + b" BAD"),
         "993: %r: BAD" % line)
tls.sendall(b"f LOGOUT\r\n")
tagged(tls, b"f")
tls.close()
t.is_(run.finish(), 0, "993: exit status 0")
end_peer(peer)
t.ok(b"STARTTLS" not in (peer.after_tls or b"x").upper(),
     "993: no STARTTLS reached the backend")


# ======================================= backend leg: fail closed, SMTP

def smtp_client(run):
    """TLS to the gateway, EHLO, an AUTH line; all it said after that."""
    if run.prog == "mailgate-smtps":
        tls = ctx.wrap_socket(run.sock, server_hostname="localhost")
        smtp_reply(tls)
    else:
        smtp_reply(run.sock)
        run.sock.sendall(b"STARTTLS\r\n")
        smtp_reply(run.sock)
        tls = ctx.wrap_socket(run.sock, server_hostname="localhost")
    tls.sendall(b"EHLO " + MARK + b"\r\n")
    try:
        tls.sendall(b"AUTH PLAIN " + ms.sasl_plain(ms.ALICE, "pw").encode()
                    + b"\r\n")
    except OSError:
        pass
    seen = until_closed(tls, 15)
    tls.close()
    return seen


GW_EHLO = b"EHLO gw.example.test\r\n"


def smtp_backend_case(name, handler, reason, security="starttls",
                      before=None, verify_not_ok=False, **more):
    for prog in ("mailgate-smtp-starttls", "mailgate-smtps"):
        label = "%s, %s" % (prog[9:], name)
        peer = peer_for(handler)
        run = Run(prog, smtp_settings(peer.port, security, **more))
        seen = smtp_client(run)
        t.ok(re.fullmatch(rb"421 4\.\d\.\d [^\r\n]*\r\n", seen),
             label + ": the client gets one 421 4.x.x reply") \
            or t.diag(seen[:300])
        t.is_(run.finish(), 111, label + ": exit status 111")
        s = one_summary(run, label)
        t.is_(s.get("status"), "111", label + ": summary status 111")
        t.ok(reason in s.get("reason", ""), label + ": reason says "
             + reason) or t.diag(s.get("reason"))
        t.is_(s.get("login"), "none", label + ": login=none")
        if verify_not_ok:
            t.ok(s.get("verify") != "ok", label + ": verify is not ok")
        end_peer(peer)
        t.ok(MARK not in peer.received and not peer.after_tls,
             label + ": nothing of the client's reached the backend")
        if before is not None:
            t.is_(peer.received, before,
                  label + ": the backend got only the gateway's words")


smtp_backend_case(
    "bytes after the go-ahead in the same write",
    smtp_backend("starttls", go_ahead=b"220 2.0.0 go ahead\r\n"
                 b"250-injected\r\n250 AUTH PLAIN\r\n"),
    "after its STARTTLS go-ahead", before=GW_EHLO + b"STARTTLS\r\n")
smtp_backend_case(
    "bytes after the go-ahead in a later write before the ServerHello",
    smtp_backend("starttls", later=b"250-injected\r\n250 AUTH PLAIN\r\n"),
    "backend TLS", before=GW_EHLO + b"STARTTLS\r\n")
smtp_backend_case(
    "STARTTLS only as part of another keyword",
    smtp_backend("starttls", ehlo=b"250-fake.example\r\n250-X-STARTTLS\r\n"
                 b"250 STARTTLSX\r\n"),
    "does not offer STARTTLS", before=GW_EHLO)
for code in (b"501 5.5.4 Syntax error", b"554 5.7.3 No TLS for you"):
    smtp_backend_case(
        "STARTTLS refused with " + code[:3].decode(),
        smtp_backend("starttls", go_ahead=code + b"\r\n"),
        "refused STARTTLS: " + code[:3].decode(),
        before=GW_EHLO + b"STARTTLS\r\n")
smtp_backend_case(
    "EHLO refused with 502 (no HELO fallback)",
    smtp_backend("starttls", ehlo=b"502 5.5.1 EHLO not here\r\n"),
    "does not offer STARTTLS", before=GW_EHLO)
smtp_backend_case(
    "an EHLO reply that never ends",
    smtp_backend("starttls", ehlo=b"250-fake.example\r\n250-STARTTLS\r\n"),
    "timeout", before=GW_EHLO, handshake_timeout="2")
smtp_backend_case(
    "security tls, backend greets in plaintext",
    smtp_backend("plain"), "backend TLS", security="tls",
    verify_not_ok=True)


# ======================================= backend leg: fail closed, IMAP

def imap_client(run):
    """What a client sees over TLS from the gateway (143: after its
    STARTTLS), sending a LOGIN once it is in."""
    sock = run.sock
    if run.prog == "mailgate-imap-starttls":
        tagged(sock, b"*")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    try:
        tls.sendall(b"x LOGIN " + MARK + b" pw\r\n")
    except OSError:
        pass
    seen = until_closed(tls, 15)
    tls.close()
    return seen


def imap_backend_case(name, handler, reason, security="starttls",
                      first_is_starttls=True, verify_not_ok=False,
                      **more):
    for prog in ("mailgate-imap-starttls", "mailgate-imaps"):
        label = "%s, %s" % (prog[9:], name)
        peer = peer_for(handler)
        run = Run(prog, imap_settings(peer.port, security, **more))
        seen = imap_client(run)
        t.ok(re.fullmatch(rb"\* BYE \[UNAVAILABLE\][^\r\n]*\r\n", seen),
             label + ": the client gets only * BYE [UNAVAILABLE]") \
            or t.diag(seen[:300])
        t.is_(run.finish(), 111, label + ": exit status 111")
        s = one_summary(run, label)
        t.is_(s.get("status"), "111", label + ": summary status 111")
        t.ok(reason in s.get("reason", ""), label + ": reason mentions "
             + reason) or t.diag(s.get("reason"))
        t.ok(s.get("login") != "ok", label + ": login is not ok")
        if verify_not_ok:
            t.ok(s.get("verify") != "ok", label + ": verify is not ok")
        end_peer(peer)
        t.ok(MARK not in peer.received and not peer.after_tls,
             label + ": nothing of the client's reached the backend")
        if first_is_starttls:
            t.ok(re.fullmatch(rb"\S+ STARTTLS\r\n", peer.received),
                 label + ": the backend got nothing but STARTTLS") \
                or t.diag(peer.received)


imap_backend_case(
    "tagged OK injected behind the go-ahead",
    imap_backend("starttls", answer=lambda tag: tag + b" OK Begin TLS\r\n"
                 b"x OK LOGIN completed\r\n"),
    "after its STARTTLS go-ahead")
imap_backend_case(
    "[ALERT] injected behind the go-ahead",
    imap_backend("starttls", answer=lambda tag: tag + b" OK Begin TLS\r\n"
                 b"* OK [ALERT] mail your password to " + EVIL + b"\r\n"),
    "after its STARTTLS go-ahead")
imap_backend_case(
    "bytes in a later write before the ServerHello",
    imap_backend("starttls", later=b"* OK [CAPABILITY IMAP4rev1 "
                 b"AUTH=PLAIN] injected\r\n"), "backend TLS")
imap_backend_case(
    "STARTTLS not in the greeting, NO to it",
    imap_backend("starttls", greeting=b"* OK [CAPABILITY IMAP4rev1] hi\r\n",
                 answer=lambda tag: tag + b" NO not here\r\n"), "STARTTLS")
imap_backend_case(
    "STARTTLS answered with a continuation request",
    imap_backend("starttls", answer=lambda tag: b"+ go on\r\n"),
    "unexpected response to STARTTLS")
imap_backend_case(
    "STARTTLS answered with a foreign tag",
    imap_backend("starttls", answer=lambda tag: b"A0001 OK Begin TLS\r\n"),
    "unexpected response to STARTTLS")
imap_backend_case(
    "STARTTLS never answered",
    imap_backend("starttls", answer=lambda tag: b"* OK still thinking"),
    "timeout", handshake_timeout="2")
imap_backend_case(
    "security tls, backend greets in plaintext",
    imap_backend("plain"), "backend TLS", security="tls",
    first_is_starttls=False, verify_not_ok=True)


# ============ backend leg: an [ALERT] greeting in plaintext stays there

ALERT = b"* OK [ALERT] Mail your password to " + EVIL + b"\r\n"
for prog in ("mailgate-imap-starttls", "mailgate-imaps"):
    label = prog[9:] + ", plaintext [ALERT] greeting"
    peer = peer_for(imap_backend("starttls", greeting=ALERT))
    run = Run(prog, imap_settings(peer.port, "starttls"))
    sock = run.sock
    seen = b""
    if prog == "mailgate-imap-starttls":
        seen += tagged(sock, b"*")
        sock.sendall(b"s STARTTLS\r\n")
        seen += tagged(sock, b"s")
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    if prog == "mailgate-imaps":
        seen += tagged(tls, b"*")
    tls.sendall(b"c CAPABILITY\r\n")
    seen += tagged(tls, b"c")
    tls.sendall(b"d LOGOUT\r\n")
    seen += tagged(tls, b"d")
    tls.close()
    t.ok(b"c OK" in seen and b"d OK" in seen,
         label + ": the session over TLS works") or t.diag(seen)
    t.ok(b"ALERT" not in seen and EVIL not in seen,
         label + ": the plaintext alert never reaches the client") \
        or t.diag(seen)
    t.is_(run.finish(), 0, label + ": exit status 0")
    end_peer(peer)
    t.ok(re.fullmatch(rb"(M[0-9a-f]{8} CAPABILITY\r\n)?"
                      rb"c CAPABILITY\r\nd LOGOUT\r\n", peer.after_tls or b""),
         label + ": the backend got the client's commands inside TLS") \
        or t.diag(peer.after_tls)

t.done()
