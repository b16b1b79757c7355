#!/usr/bin/python3
"""SMTP AUTH passes through the gateway byte for byte.

Against a private Postfix: AUTH PLAIN with and without an initial
response, AUTH LOGIN, a wrong password and a cancelled exchange, each
answered with exactly what Postfix says to a direct client.  Against a
scripted TLS backend: OAuth tokens longer than 1000 bytes arrive
unchanged.  No credential ever shows in the gateway's -vv log.
"""

import base64
import os
import smtplib
import socket
import ssl
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
dovecot, postfix = ms.start_stack(base, certdir)
ctx = ms.client_context(certdir)


def b64(data):
    return base64.b64encode(data).decode("ascii")


WRONG_PW = "not " + ms.ALICE_PW
SECRETS = [ms.ALICE_PW, ms.sasl_plain(ms.ALICE, ms.ALICE_PW),
           b64(ms.ALICE_PW.encode()), ms.sasl_plain(ms.ALICE, WRONG_PW),
           ms.sasl_plain(ms.BOB, ms.BOB_PW), b64(ms.ALICE.encode())]


def direct():
    """A client of Postfix itself, for the replies to compare with."""
    smtp = smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=20)
    smtp.starttls(context=ctx)
    smtp.ehlo()
    return smtp


def via(g, implicit=False):
    if implicit:
        smtp = smtplib.SMTP_SSL("127.0.0.1", g.port, timeout=20,
                                context=ctx)
    else:
        smtp = smtplib.SMTP("127.0.0.1", g.port, timeout=20)
        smtp.starttls(context=ctx)
    smtp.ehlo()
    return smtp


def summary_after(g, before):
    found = g.wait_summaries(before + 1)
    return found[before] if len(found) > before else {}


def session(g, name, steps, want_login, implicit=False, compare=True):
    """Run steps (lists of docmd arguments) through g and, if compare,
    against Postfix directly; check replies, login and the summary."""
    before = len(g.summaries())
    got, want = [], []

    def run_direct():
        smtp = direct()
        for args in steps:
            want.append(smtp.docmd(*args))
        smtp.quit()

    # Dovecot delays failed logins: both sessions wait at the same time.
    other = threading.Thread(target=run_direct, daemon=True)
    if compare:
        other.start()
    try:
        smtp = via(g, implicit)
        for args in steps:
            got.append(smtp.docmd(*args))
        smtp.quit()
    except (OSError, smtplib.SMTPException) as e:
        t.ok(False, name + ": session failed: %r" % e)
    if compare:
        other.join(30)
        t.is_(got, want, name + ": replies are Postfix's own")
    s = summary_after(g, before)
    t.is_(s.get("login"), want_login, name + ": login=" + want_login)
    t.is_(s.get("status"), "0", name + ": status=0")
    return got


# ------------------------------------------------------ against Postfix

g587 = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
    certdir, "localhost", postfix.submission_port, "starttls")).start()
g465 = gw.Gateway("mailgate-smtps", base, gw.smtp_settings(
    certdir, "localhost", postfix.submissions_port, "tls")).start()

got = session(g587, "PLAIN with initial response",
              [("AUTH", "PLAIN " + ms.sasl_plain(ms.ALICE, ms.ALICE_PW))],
              "ok")
t.is_([c for c, _ in got], [235], "PLAIN with initial response: 235")

got = session(g587, "PLAIN without initial response",
              [("AUTH", "PLAIN"), (ms.sasl_plain(ms.ALICE, ms.ALICE_PW),)],
              "ok")
t.is_([c for c, _ in got], [334, 235],
      "PLAIN without initial response: 334 then 235")

login_steps = [("AUTH", "LOGIN"), (b64(ms.ALICE.encode()),),
               (b64(ms.ALICE_PW.encode()),)]
got = session(g587, "LOGIN", login_steps, "ok")
t.is_([c for c, _ in got], [334, 334, 235], "LOGIN: 334, 334, 235")
got = session(g465, "LOGIN over smtps", login_steps, "ok", implicit=True)
t.is_([c for c, _ in got], [334, 334, 235], "LOGIN over smtps: 235")

got = session(g587, "wrong password",
              [("AUTH", "PLAIN " + ms.sasl_plain(ms.ALICE, WRONG_PW))],
              "failed")
t.is_([c for c, _ in got], [535], "wrong password: 535")

got = session(g587, "cancelled", [("AUTH", "PLAIN"), ("*",)], "failed")
t.is_([c for c, _ in got], [334, 501], "cancelled: 334 then 501")

got = session(g587, "cancelled, then right",
              [("AUTH", "LOGIN"), ("*",),
               ("AUTH", "PLAIN " + ms.sasl_plain(ms.BOB, ms.BOB_PW))], "ok",
              compare=False)
t.is_([c for c, _ in got], [334, 501, 235],
      "cancelled, then right: 334, 501, 235")

# ------------------------------------- long tokens, scripted TLS backend

backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
backend_ctx.load_cert_chain(os.path.join(certdir, "backend.pem"),
                            os.path.join(certdir, "backend-key.pem"))


def oauth_server(peer, sock):
    """STARTTLS, then OAuth mechanisms; peer.after_tls[i] keeps every
    byte of connection i after the handshake."""
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
                tls.sendall(b"250-fake.example\r\n"
                            b"250 AUTH XOAUTH2 OAUTHBEARER\r\n")
            elif line.rstrip(b"\r\n").upper() == b"AUTH OAUTHBEARER":
                tls.sendall(b"334 \r\n")
                peer.recv_line(tls)
                tls.sendall(b"235 2.7.0 token taken\r\n")
            elif word == b"AUTH":
                tls.sendall(b"235 2.7.0 token taken\r\n")
            else:
                tls.sendall(b"502 5.5.2 not here\r\n")
    finally:
        peer.after_tls.append(peer.received[mark:])
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


def raw_session(port, lines):
    """STARTTLS by hand, then send lines (bytes) one at a time; return
    the replies."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    replies = [read_reply(sock)]
    sock.sendall(b"EHLO client.example\r\n")
    replies.append(read_reply(sock))
    sock.sendall(b"STARTTLS\r\n")
    replies.append(read_reply(sock))
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    for line in lines:
        tls.sendall(line)
        replies.append(read_reply(tls))
    tls.close()
    return replies


peer = gw.ScriptedPeer(oauth_server, connections=2)
peer.after_tls = []
g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
    certdir, "localhost", peer.port, "starttls")).start()

token1 = b64(b"user=" + ms.ALICE.encode() + b"\x01auth=Bearer " +
             os.urandom(1500).hex().encode() + b"\x01\x01")
token2 = b64(b"n,a=" + ms.ALICE.encode() + b",\x01auth=Bearer " +
             os.urandom(900).hex().encode() + b"\x01\x01")
t.ok(len(token1) > 1000 and len(token2) > 1000, "tokens longer than 1000")
SECRETS += [token1, token2]

sent1 = [b"EHLO client.example\r\n",
         b"AUTH XOAUTH2 " + token1.encode() + b"\r\n", b"QUIT\r\n"]
sent2 = [b"EHLO client.example\r\n", b"AUTH OAUTHBEARER\r\n",
         token2.encode() + b"\r\n", b"QUIT\r\n"]
before = len(g.summaries())
r1 = raw_session(g.port, sent1)
r2 = raw_session(g.port, sent2)
t.ok(r1[4].startswith(b"235 "), "XOAUTH2 with initial response: 235")
t.ok(r2[4].startswith(b"334 ") and r2[5].startswith(b"235 "),
     "OAUTHBEARER without initial response: 334 then 235")
found = g.wait_summaries(before + 2)
t.is_([s.get("login") for s in found[before:]], ["ok", "ok"],
      "OAuth sessions: login=ok")
peer.stop()
t.is_(peer.errors, [], "scripted backend had no errors")
t.is_(len(peer.after_tls), 2, "scripted backend saw two TLS sessions")
for i, sent in enumerate((sent1, sent2)):
    got = peer.after_tls[i] if i < len(peer.after_tls) else b""
    if not t.ok(got == b"".join(sent),
                "session %d: backend got the client's bytes exactly"
                % (i + 1)):
        t.diag("got %d bytes: %r..." % (len(got), got[:120]))

# ----------------------------------------- no credentials in the logs

logs = g587.log() + g465.log() + g.log()
t.ok("[hidden]" in logs, "the trace hides payloads")
leaks = [s[:12] + "..." for s in SECRETS if s in logs]
leaks += ["part of " + s[:12] for s in SECRETS
          if len(s) > 40 and s[8:40] in logs]
t.is_(leaks, [], "no password, SASL payload or token in the -vv logs")
t.ok(ms.ALICE_PW.split()[0] not in logs, "not even part of the password")

t.done()
