#!/usr/bin/python3
"""After TLS the client sees the backend's own EHLO reply, filtered.

A scripted backend speaks STARTTLS and then answers EHLO with keywords
that cannot work through the gateway: STARTTLS (in any case and in any
place) and channel-binding SASL mechanisms (-PLUS), in both the "AUTH "
and the old "AUTH=" spelling.  The client must get everything else
unchanged, in order, with exactly one final "250 " line, and nothing of
what the backend said before its TLS.
"""

import os
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


def crlf(*lines):
    return b"".join(line + b"\r\n" for line in lines)


# (name, the backend's reply after TLS, what the client must see)
CASES = [
    ("STARTTLS and -PLUS in both AUTH spellings",
     crlf(b"250-fake.example greets client.example", b"250-PIPELINING",
          b"250-STARTTLS", b"250-AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN",
          b"250-AUTH=SCRAM-SHA-256-PLUS PLAIN LOGIN", b"250-SIZE 1000",
          b"250 8BITMIME"),
     crlf(b"250-fake.example greets client.example", b"250-PIPELINING",
          b"250-AUTH SCRAM-SHA-256 PLAIN", b"250-AUTH=PLAIN LOGIN",
          b"250-SIZE 1000", b"250 8BITMIME")),
    ("STARTTLS as the final line",
     crlf(b"250-fake.example", b"250-AUTH PLAIN SCRAM-SHA-1-PLUS",
          b"250 STARTTLS"),
     crlf(b"250-fake.example", b"250 AUTH PLAIN")),
    ("only -PLUS mechanisms, lower-case starttls",
     crlf(b"250-fake.example", b"250-AUTH SCRAM-SHA-1-PLUS",
          b"250-starttls", b"250 SIZE 5"),
     crlf(b"250-fake.example", b"250 SIZE 5")),
    ("nothing left but the greeting line",
     crlf(b"250-fake.example", b"250-AUTH=SCRAM-SHA-256-PLUS",
          b"250 StartTLS"),
     crlf(b"250 fake.example")),
]
PRE_TLS = crlf(b"250-fake.example", b"250-X-BEFORE-TLS-ONLY",
               b"250-AUTH PLAIN", b"250 STARTTLS")


def ehlo_server(peer, sock):
    """STARTTLS, then the next case's EHLO reply."""
    reply = CASES[peer.served % len(CASES)][1]
    peer.served += 1
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        if line.upper().startswith(b"EHLO"):
            sock.sendall(PRE_TLS)
        elif line.upper() == b"STARTTLS\r\n":
            sock.sendall(b"220 go ahead\r\n")
            break
        else:
            return
    tls = backend_ctx.wrap_socket(sock, server_side=True)
    try:
        while True:
            line = peer.recv_line(tls)
            word = line.split(b" ")[0].strip().upper()
            if not line or word == b"QUIT":
                tls.sendall(b"221 2.0.0 bye\r\n")
                return
            tls.sendall(reply if word == b"EHLO" else b"250 ok\r\n")
    finally:
        tls.close()


def read_reply(sock):
    """One SMTP reply, all its lines, as bytes."""
    data = b""
    sock.settimeout(10)
    while True:
        chunk = sock.recv(65536)
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


def ehlo_via(g, implicit):
    """The EHLO reply a client gets through g after TLS."""
    sock = g.connect()
    if implicit:
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        read_reply(tls)
    else:
        read_reply(sock)
        command(sock, b"EHLO client.example\r\n")
        command(sock, b"STARTTLS\r\n")
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
    reply = command(tls, b"EHLO client.example\r\n")
    command(tls, b"QUIT\r\n")
    tls.close()
    return reply


peer = gw.ScriptedPeer(ehlo_server, connections=2 * len(CASES))
peer.served = 0
for prog, implicit in (("mailgate-smtp-starttls", False),
                       ("mailgate-smtps", True)):
    g = gw.Gateway(prog, base, gw.smtp_settings(
        certdir, "localhost", peer.port, "starttls")).start()
    for name, _, want in CASES:
        got = ehlo_via(g, implicit)
        label = "%s: %s" % (prog, name)
        t.is_(got, want, label)
        lines = got.split(b"\r\n")[:-1]
        t.is_([line[3:4] for line in lines].count(b" "), 1,
              label + ": exactly one final line")
        t.ok(b"X-BEFORE-TLS-ONLY" not in got,
             label + ": nothing from before the backend's TLS")
    found = g.wait_summaries(len(CASES))
    t.is_([s.get("status") for s in found], ["0"] * len(CASES),
          prog + ": every session ended with status 0")
    g.stop()
peer.stop()
t.is_(peer.errors, [], "scripted backend had no errors")

t.done()
