#!/usr/bin/python3
"""A backend leg that cannot be secured ends the session, never in
plaintext.

Each scripted backend misbehaves in one way: no STARTTLS, bytes injected
after its go-ahead, STARTTLS refused, a certificate that is untrusted,
for another name or expired, or no backend at all.  The client must get
421, the summary must say why with status 111, and nothing the client
sent after its own TLS may reach the backend.
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
HOSTNAME = b"gw.example.test"
GATEWAY_EHLO = b"EHLO " + HOSTNAME + b"\r\n"
CLIENT_MARK = b"client.example"


def server_context(name):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(os.path.join(certdir, name + ".pem"),
                      os.path.join(certdir, name + "-key.pem"))
    return c


def starttls_backend(ehlo=b"250-fake.example\r\n250 STARTTLS\r\n",
                     go_ahead=b"220 2.0.0 go ahead\r\n", cert="backend"):
    """A handler: EHLO gets ehlo, STARTTLS gets go_ahead; a 220 is
    followed by a handshake with cert, and whatever arrives over it is
    kept in peer.after_tls."""
    def handler(peer, sock):
        sock.sendall(b"220 fake.example ESMTP\r\n")
        while True:
            line = peer.recv_line(sock)
            if line.upper().startswith(b"EHLO"):
                sock.sendall(ehlo)
            elif line.upper() == b"STARTTLS\r\n":
                sock.sendall(go_ahead)
                if go_ahead.startswith(b"220"):
                    break
            else:
                return
        tls = server_context(cert).wrap_socket(sock, server_side=True)
        peer.after_tls = peer.recv_some(tls, 1)
    return handler


def refusing_backend(peer, sock):
    """A backend that does not want us."""
    sock.sendall(b"554 5.3.2 go away\r\n")
    peer.recv_some(sock, 1)


def tls_backend(cert):
    """A handler for implicit TLS presenting cert."""
    def handler(peer, sock):
        tls = server_context(cert).wrap_socket(sock, server_side=True)
        tls.sendall(b"220 fake.example ESMTP\r\n")
        peer.after_tls = peer.recv_some(tls, 1)
    return handler


def read_all(sock, timeout=10):
    """Everything until the gateway closes."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_reply(sock):
    data = b""
    sock.settimeout(10)
    while not data.endswith(b"\n") or data[:-1].rsplit(
            b"\n", 1)[-1][3:4] not in (b" ", b"\r"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def client(g, implicit):
    """TLS to the gateway, then EHLO and a login attempt; return what
    the gateway said after the EHLO."""
    sock = g.connect()
    if implicit:
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        read_reply(tls)
    else:
        read_reply(sock)
        sock.sendall(b"EHLO " + CLIENT_MARK + b"\r\n")
        read_reply(sock)
        sock.sendall(b"STARTTLS\r\n")
        read_reply(sock)
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"EHLO " + CLIENT_MARK + b"\r\n")
    try:
        tls.sendall(b"AUTH PLAIN " +
                    ms.sasl_plain(ms.ALICE, ms.ALICE_PW).encode() + b"\r\n")
    except OSError:
        pass  # the gateway may have closed already
    got = read_all(tls)
    tls.close()
    return got


def check(name, handler, reason, implicit=False, security="starttls",
          cert_failure=False, before=None, port=None):
    """Run one client against handler and check the outcome."""
    peer = None
    if handler is not None:
        peer = gw.ScriptedPeer(handler)
        peer.after_tls = None
        port = peer.port
    g = gw.Gateway("mailgate-smtps" if implicit else
                   "mailgate-smtp-starttls", base, gw.smtp_settings(
                       certdir, "localhost", port, security,
                       hostname=HOSTNAME.decode())).start()
    got = client(g, implicit)
    lines = got.split(b"\r\n")
    t.ok(got.startswith(b"421 4.") and got.endswith(b"\r\n") and
         len(lines) == 2, name + ": the client gets one 421 reply")
    if not got.startswith(b"421 "):
        t.diag("got %r" % got[:300])
    s = g.wait_summaries(1)
    s = s[0] if s else {}
    t.is_(s.get("status"), "111", name + ": status=111")
    if not t.ok(reason in s.get("reason", ""),
                name + ": reason says " + reason):
        t.diag("reason: %r" % s.get("reason"))
    t.is_(s.get("login"), "none", name + ": login=none")
    if cert_failure:
        t.is_(s.get("verify"), "failed", name + ": verify=failed")
    if peer is not None:
        peer.stop()
        t.ok(CLIENT_MARK not in peer.received and
             peer.after_tls in (None, b""),
             name + ": nothing of the client reached the backend")
        if before is not None:
            t.is_(peer.received, before,
                  name + ": the backend got only the gateway's own words")
    g.stop()


check("no STARTTLS offered",
      starttls_backend(ehlo=b"250-fake.example\r\n250 AUTH PLAIN\r\n"),
      "backend does not offer STARTTLS", before=GATEWAY_EHLO)
check("EHLO refused",
      starttls_backend(ehlo=b"502 5.5.1 no EHLO here\r\n"),
      "backend does not offer STARTTLS", before=GATEWAY_EHLO)
check("STARTTLS refused with 454",
      starttls_backend(go_ahead=b"454 4.7.0 TLS not available\r\n"),
      "backend refused STARTTLS: 454",
      before=GATEWAY_EHLO + b"STARTTLS\r\n")
check("bytes injected after the go-ahead",
      starttls_backend(go_ahead=b"220 2.0.0 go ahead\r\n"
                       b"250-injected\r\n250 AUTH PLAIN\r\n"),
      "after its STARTTLS go-ahead", before=GATEWAY_EHLO + b"STARTTLS\r\n")
for cert, reason in (("untrusted", "certificate not trusted"),
                     ("wrongname", "certificate name mismatch"),
                     ("expired", "certificate expired")):
    check("STARTTLS, %s certificate" % cert, starttls_backend(cert=cert),
          reason, cert_failure=True,
          before=GATEWAY_EHLO + b"STARTTLS\r\n")
    check("smtps to TLS, %s certificate" % cert, tls_backend(cert), reason,
          implicit=True, security="tls", cert_failure=True, before=b"")
check("greeting not 220", refusing_backend, "backend greeting not 220",
      before=b"")
check("backend down", None, "cannot connect", port=ms.free_port())
check("backend down, smtps", None, "cannot connect", implicit=True,
      security="tls", port=ms.free_port())

t.done()
