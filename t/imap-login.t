#!/usr/bin/python3
"""Real IMAP clients log in through both IMAP gateways, in front of a
private Dovecot reached with STARTTLS and with implicit TLS: LOGIN with
quoted strings and literals, AUTHENTICATE PLAIN with and without an
initial response, a wrong password, SELECT, and curl on both ports.
Every session's summary line must tell what really happened, and no
password may show up in the gateway's log."""

import imaplib
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from direct import tagged  # noqa: E402
from mailstack import ALICE, ALICE_PW, BOB, BOB_PW  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
dovecot = mailstack.Dovecot(os.path.join(base, "dovecot"), certdir)
dovecot.start()
ctx = mailstack.client_context(certdir)
WRONG_PW = "not the password 7f3a"
TLS_RE = re.compile(r"^TLS1\.[23]/")

# The message curl fetches, seeded through the gateway by APPEND.
SEED = (b"From: alice@example.test\r\nTo: bob@example.test\r\n"
        b"Subject: seed for curl\r\n\r\nHello through the gateway.\r\n")


def open_imaplib(g):
    """An imaplib client through g, TLS up, trusting only the test CA."""
    if g.prog == "mailgate-imaps":
        return imaplib.IMAP4_SSL("127.0.0.1", g.port, ssl_context=ctx,
                                 timeout=10)
    m = imaplib.IMAP4("127.0.0.1", g.port, timeout=10)
    m.starttls(ssl_context=ctx)
    return m


def open_raw(g):
    """A TLS socket through g, past the greeting (or STARTTLS)."""
    sock = g.connect()
    if g.prog == "mailgate-imap-starttls":
        gateway.read_until(sock, b"\r\n")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    sock = ctx.wrap_socket(sock, server_hostname="localhost")
    if g.prog == "mailgate-imaps":
        gateway.read_until(sock, b"\r\n")
    return sock


def session_summary(g, before):
    """The summary line of the session that started after before lines."""
    found = g.wait_summaries(before + 1)
    return found[before] if len(found) > before else {}


def check_summary(name, s, login):
    t.ok(TLS_RE.match(s.get("client_tls", "")),
         "%s: client_tls is TLS 1.2 or 1.3 (%s)" % (name,
                                                   s.get("client_tls")))
    t.ok(TLS_RE.match(s.get("backend_tls", "")),
         "%s: backend_tls is TLS 1.2 or 1.3 (%s)" % (name,
                                                    s.get("backend_tls")))
    t.is_(s.get("verify"), "ok", "%s: verify=ok" % name)
    t.is_(s.get("login"), login, "%s: login=%s" % (name, login))
    t.is_(s.get("status"), "0", "%s: status=0" % name)


def logout(m):
    """LOGOUT, waiting for its tagged OK: imaplib's own logout() closes
    as soon as the BYE arrives, racing the gateway's last write."""
    m.send(b"Z LOGOUT\r\n")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        line = m.readline()
        if not line or line.startswith(b"Z "):
            break
    m.shutdown()


def imaplib_session(g, name, login, expect="ok", select=True):
    """Log in with imaplib through g using login(m); check the result,
    SELECT, and the summary line."""
    before = len(g.summaries())
    m = open_imaplib(g)
    caps = set(m.capabilities)
    t.ok("STARTTLS" not in caps and "LOGINDISABLED" not in caps and
         "AUTH=PLAIN" in caps,
         "%s: capabilities inside TLS are the backend's, filtered" % name)
    try:
        typ, data = login(m)
    except imaplib.IMAP4.error as e:
        typ, data = "NO", [str(e).encode()]
    t.is_(typ, "OK" if expect == "ok" else "NO", "%s: login %s"
          % (name, "accepted" if expect == "ok" else "refused"))
    if expect == "ok" and select:
        typ, data = m.select("INBOX")
        t.is_(typ, "OK", "%s: SELECT INBOX" % name)
    logout(m)
    check_summary(name, session_summary(g, before),
                  "ok" if expect == "ok" else "failed")


def quoted_alice(m):
    """LOGIN with both arguments as quoted strings, escapes and UTF-8."""
    pw = ALICE_PW.replace("\\", "\\\\").replace('"', '\\"')
    m._encoding = "utf-8"
    typ, data = m._simple_command("LOGIN", '"%s"' % ALICE, '"%s"' % pw)
    if typ == "OK":
        m.state = "AUTH"
    return typ, data


def raw_auth_ir(g, name):
    """AUTHENTICATE PLAIN with an initial response (SASL-IR)."""
    before = len(g.summaries())
    sock = open_raw(g)
    sock.sendall(b"a AUTHENTICATE PLAIN " +
                 mailstack.sasl_plain(ALICE, ALICE_PW).encode() + b"\r\n")
    reply = tagged(sock, b"a")
    t.ok(b"\r\na OK" in b"\r\n" + reply,
         "%s: AUTHENTICATE PLAIN with initial response accepted" % name)
    t.ok(b"\r\n+" not in b"\r\n" + reply,
         "%s: no continuation request for an initial response" % name)
    sock.sendall(b"b SELECT INBOX\r\n")
    t.ok(b"b OK" in tagged(sock, b"b"), "%s: SELECT after it" % name)
    sock.sendall(b"c LOGOUT\r\n")
    tagged(sock, b"c")
    sock.close()
    check_summary(name, session_summary(g, before), "ok")


def seed(g):
    m = open_imaplib(g)
    m.login(BOB, BOB_PW)
    typ, data = m.append("INBOX", None, None, SEED)
    logout(m)
    return typ


def curl(g, user, password, options=None):
    scheme = "imaps" if g.prog == "mailgate-imaps" else "imap"
    argv = ["curl", "-sS", "--max-time", "20", "--ssl-reqd", "--cacert",
            os.path.join(certdir, "ca.pem"), "-u",
            "%s:%s" % (user, password),
            "%s://127.0.0.1:%d/INBOX/;MAILINDEX=1" % (scheme, g.port)]
    if options:
        argv[1:1] = ["--login-options", options]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def curl_sessions(g, name):
    for options, what in ((None, "AUTHENTICATE with initial response"),
                          ("AUTH=LOGIN", "AUTHENTICATE LOGIN")):
        before = len(g.summaries())
        status, out, err = curl(g, BOB, BOB_PW, options)
        label = "%s: curl %s" % (name, what)
        t.is_(status, 0, "%s exits 0" % label) or t.diag(err)
        t.is_(out, SEED, "%s fetches the message byte for byte" % label)
        check_summary(label, session_summary(g, before), "ok")


gateways = []
for prog in ("mailgate-imap-starttls", "mailgate-imaps"):
    for security in ("starttls", "tls"):
        port = dovecot.imap_port if security == "starttls" \
            else dovecot.imaps_port
        g = gateway.Gateway(prog, base, gateway.imap_settings(
            certdir, "127.0.0.1", port, security)).start()
        gateways.append(g)

t.is_(seed(gateways[0]), "OK", "APPEND of curl's message through "
      "the gateway")

for g in gateways:
    security = g.settings["imap.security"]
    name = "%s, backend %s" % (g.prog, security)
    imaplib_session(g, name + ", LOGIN quoted (bob)",
                    lambda m: m.login(BOB, BOB_PW))
    imaplib_session(g, name + ", LOGIN quoted (alice, escapes, UTF-8)",
                    quoted_alice)
    imaplib_session(g, name + ", LOGIN literal (alice)",
                    lambda m: mailstack.imap_login_literal(m, ALICE,
                                                           ALICE_PW))
    imaplib_session(g, name + ", AUTHENTICATE PLAIN, no initial response",
                    lambda m: mailstack.imap_auth_plain(m, ALICE, ALICE_PW))
    raw_auth_ir(g, name + ", AUTHENTICATE PLAIN initial response")
    imaplib_session(g, name + ", wrong password",
                    lambda m: m.login(BOB, WRONG_PW), expect="no")
    curl_sessions(g, name)

secrets = [ALICE_PW, "s3cret pass", BOB_PW, WRONG_PW,
           mailstack.sasl_plain(ALICE, ALICE_PW),
           mailstack.sasl_plain(BOB, BOB_PW)]
for g in gateways:
    log = g.log()
    t.ok(log.count("event=end ") >= 8, "%s: sessions were logged" % g)
    t.ok(not [s for s in secrets if s in log],
         "%s: no password or SASL payload in the -vv log" % g)
    t.ok("[hidden]" in log, "%s: the trace hides login arguments" % g)

t.done()
