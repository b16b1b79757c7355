#!/usr/bin/python3
"""Before TLS on port 587 nothing reaches the backend.

The client may only learn that STARTTLS exists, start it, wait or quit:
AUTH, MAIL, RCPT and DATA are refused with 530 and the backend is never
even connected; too many refusals end the session with 421.  Commands
pipelined behind STARTTLS are discarded, not run inside TLS, and
STARTTLS inside TLS is refused with 503.
"""

import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
ctx = ms.client_context(certdir)
backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
backend_ctx.load_cert_chain(os.path.join(certdir, "backend.pem"),
                            os.path.join(certdir, "backend-key.pem"))


def read_reply(sock):
    """One SMTP reply, all its lines, as bytes; b"" at the end."""
    data = b""
    sock.settimeout(10)
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return data
        data += chunk
        last = data[:-1].rsplit(b"\n", 1)[-1]
        if data.endswith(b"\n") and last[3:4] in (b" ", b"\r"):
            return data


def command(sock, line):
    """Send line, return the reply; b"" if the gateway has gone."""
    try:
        sock.sendall(line)
        return read_reply(sock)
    except OSError:
        return b""


def summary_after(g, before):
    found = g.wait_summaries(before + 1)
    return found[before] if len(found) > before else {}


def tls_server(peer, sock):
    """A backend with STARTTLS; peer.after_tls keeps what came over TLS,
    peer.before_tls what came before."""
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        if line.upper().startswith(b"EHLO"):
            sock.sendall(b"250-fake.example\r\n250 STARTTLS\r\n")
        elif line.upper() == b"STARTTLS\r\n":
            sock.sendall(b"220 go ahead\r\n")
            break
        else:
            return
    peer.before_tls = peer.received
    tls = backend_ctx.wrap_socket(sock, server_side=True)
    mark = len(peer.received)
    try:
        while True:
            line = peer.recv_line(tls)
            word = line.split(b" ")[0].strip().upper()
            if not line or word == b"QUIT":
                tls.sendall(b"221 2.0.0 bye\r\n")
                break
            if word == b"EHLO":
                tls.sendall(b"250-fake.example\r\n250 AUTH PLAIN\r\n")
            else:
                tls.sendall(b"250 2.0.0 fake ok\r\n")
    finally:
        peer.after_tls = peer.received[mark:]
        tls.close()


# ------------------------- refusals before TLS reach nobody

def count_connection(peer, sock):
    peer.connections += 1


silent = gw.ScriptedPeer(count_connection)
silent.connections = 0
g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
    certdir, "127.0.0.1", silent.port, "starttls", max_errors=5)).start()

before = len(g.summaries())
sock = g.connect()
t.ok(read_reply(sock).startswith(b"220 "), "plaintext greeting")
ehlo = command(sock, b"EHLO client.example\r\n")
lines = ehlo.split(b"\r\n")[:-1]
t.ok(all(line.startswith(b"250") for line in lines), "EHLO: 250 lines")
t.ok(b"250-STARTTLS" in lines or b"250 STARTTLS" in lines,
     "EHLO before TLS advertises STARTTLS")
t.ok(not any(line[4:8].upper() == b"AUTH" for line in lines),
     "EHLO before TLS advertises no AUTH")
t.is_(len([line for line in lines if line[3:4] == b" "]), 1,
      "EHLO before TLS has exactly one final line")
t.ok(lines[-1][3:4] == b" ", "the final line is the last one")
t.ok(command(sock, b"NOOP\r\n").startswith(b"250 "), "NOOP: 250")
secret = ms.sasl_plain(ms.ALICE, ms.ALICE_PW).encode()
for line in (b"AUTH PLAIN " + secret, b"MAIL FROM:<" + ms.BOB.encode() + b">",
             b"RCPT TO:<" + ms.ALICE.encode() + b">", b"DATA"):
    reply = command(sock, line + b"\r\n")
    t.ok(reply.startswith(b"530 "), "%s before TLS: 530 (%r)"
         % (line.split()[0].decode(), reply[:40]))
t.ok(command(sock, b"QUIT\r\n").startswith(b"221 "), "QUIT before TLS: 221")
sock.close()
s = summary_after(g, before)
t.is_((s.get("status"), s.get("login"), s.get("backend_tls")),
      ("0", "none", "none"), "summary: status 0, no login, no backend TLS")

before = len(g.summaries())
sock = g.connect()
read_reply(sock)
replies = []
for i in range(5):
    replies.append(command(sock, b"MAIL FROM:<x@example.test>\r\n"))
rest = replies[-1] + read_reply(sock)
t.ok(all(r.startswith(b"530 ") for r in replies[:4]),
     "the first four errors get 530")
t.ok(b"\r\n421 " in b"\r\n" + rest, "the fifth error: 421")
t.is_(read_reply(sock), b"", "then the gateway disconnects")
sock.close()
s = summary_after(g, before)
t.is_((s.get("status"), s.get("reason")), ("1", "too many errors"),
      "summary: status 1, too many errors")

try:  # a connection the gateway made would be accepted by now
    ms.wait_until(lambda: silent.connections > 0, 0.3, "a connection")
except TimeoutError:
    pass
t.is_(silent.connections, 0, "the backend got no connection at all")
# Closing a listener does not wake a thread blocked in accept(): one
# connection of our own ends the peer's wait at once.
socket.create_connection(("127.0.0.1", silent.port), timeout=5).close()
silent.stop()
t.ok(secret.decode() not in g.log(), "the AUTH payload was not logged")

# --------------------- plaintext pipelined behind STARTTLS is discarded

peer = gw.ScriptedPeer(tls_server)
peer.before_tls = peer.after_tls = None
g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
    certdir, "localhost", peer.port, "starttls")).start()
before = len(g.summaries())
sock = g.connect()
read_reply(sock)
command(sock, b"EHLO client.example\r\n")
reply = command(sock, b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n")
t.ok(reply.startswith(b"220 "), "STARTTLS with a pipelined MAIL: 220")
t.is_(reply.count(b"\n"), 1, "one reply only, none for the MAIL")
tls = ctx.wrap_socket(sock, server_hostname="localhost")
ehlo = command(tls, b"EHLO client.example\r\n")
t.ok(ehlo.startswith(b"250-fake.example\r\n"),
     "the first reply inside TLS answers the client's EHLO")
reply = command(tls, b"STARTTLS\r\n")
t.ok(reply.startswith(b"503 "), "STARTTLS inside TLS: 503")
t.ok(command(tls, b"QUIT\r\n").startswith(b"221 "), "QUIT: 221")
tls.close()
s = summary_after(g, before)
t.is_(s.get("status"), "0", "summary: status 0")
peer.stop()
t.is_(peer.errors, [], "scripted backend had no errors")
t.is_(peer.after_tls, b"EHLO client.example\r\nQUIT\r\n",
      "the backend got only the client's own commands inside TLS")
t.ok(b"MAIL" not in peer.received, "the pipelined MAIL never reached it")
log = g.log()
t.ok("event=discard" in log and "plaintext after STARTTLS" in log,
     "the discard is logged")

# ------------------------------------------- STARTTLS inside smtps

g = gw.Gateway("mailgate-smtps", base, gw.smtp_settings(
    certdir, "127.0.0.1", ms.free_port(), "tls")).start()
tls = ctx.wrap_socket(g.connect(), server_hostname="localhost")
t.ok(read_reply(tls).startswith(b"220 "), "smtps greeting")
t.ok(command(tls, b"STARTTLS\r\n").startswith(b"503 "),
     "STARTTLS on smtps: 503")
t.ok(command(tls, b"QUIT\r\n").startswith(b"221 "), "QUIT: 221")
tls.close()

t.done()
