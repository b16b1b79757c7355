#!/usr/bin/python3
"""Mail submitted through both SMTP gateways arrives byte for byte.

Real clients (Python smtplib and swaks) talk TLS to the gateways, the
gateways talk STARTTLS or TLS to a private Postfix, and each message is
read back from the recipient's Maildir.  A third leg, a plaintext
scripted backend allowed with allow_plaintext_backend, shows that the
gateway relays the DATA bytes without touching them and logs a warning.
"""

import os
import random
import re
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
ca = os.path.join(certdir, "ca.pem")
base = ms.scratch_dir()
dovecot, postfix = ms.start_stack(base, certdir)
serial = 0


def crlf(*lines):
    return b"".join(line + b"\r\n" for line in lines)


def big_body():
    """About 1 MB of lines, some with a leading dot or 8-bit bytes."""
    rnd = random.Random(4711)
    alphabet = bytes(range(0x21, 0x7f)) + bytes(range(0xa0, 0x100))
    lines = []
    size = 0
    while size < 1024 * 1024:
        line = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 76)))
        if rnd.random() < 0.05:
            line = b"." + line
        if rnd.random() < 0.01:
            line = b"."
        lines.append(line)
        size += len(line) + 2
    return crlf(*lines)


BODIES = {
    "dots": crlf(b".leading dot", b"..two dots", b".", b"between",
                 b". dot space", b".", b".", b"end"),
    "long lines": crlf(b"a" * 998, b"." + b"b" * 997, b"c" * 500,
                       bytes(range(0x21, 0x7f)) * 10),
    "8-bit": crlf(bytes(range(0x80, 0xc0)), bytes(range(0xc0, 0x100)),
                  "gr\u00fc\u00dfe, \u65e5\u672c, \u00e9t\u00e9".encode(),
                  b"tab\there"),
    "1 MB": big_body(),
}


def new_id():
    global serial
    serial += 1
    return "submit-%d-%d" % (os.getpid(), serial)


def message(test_id, body):
    head = crlf(b"From: " + ms.BOB.encode(), b"To: " + ms.ALICE.encode(),
                b"Subject: " + test_id.encode(),
                b"X-Test-Id: " + test_id.encode())
    return head + b"\r\n" + body


def arrived(test_id, body, name):
    """Check that the message with test_id arrived with exactly body."""
    msgs = ms.wait_for_mail(dovecot, ms.ALICE, timeout=15,
                            match=b"X-Test-Id: " + test_id.encode() + b"\r\n")
    if not t.ok(len(msgs) == 1, name + ": arrived once"):
        t.diag("found %d messages; postfix log:\n%s"
               % (len(msgs), ms.tail(postfix.log)))
        return
    got = ms.message_body(msgs[0])
    if not t.ok(got == body, name + ": body byte-identical"):
        t.diag("sent %d bytes, got %d" % (len(body), len(got)))
        for i, (a, b) in enumerate(zip(got, body)):
            if a != b:
                t.diag("first difference at %d: %r vs %r"
                       % (i, got[max(0, i - 20):i + 20],
                          body[max(0, i - 20):i + 20]))
                break


TLS_NAME = re.compile(r"^TLS1\.[23]/")


def summary_ok(g, before, name, want_verify="ok", backend_tls=True):
    """Check the summary line of the session that followed before."""
    found = g.wait_summaries(before + 1)
    s = found[before] if len(found) > before else {}
    if not s:
        t.ok(False, name + ": summary line logged")
        t.diag(g.log()[-3000:])
        return s
    t.ok(TLS_NAME.match(s.get("client_tls", "")),
         name + ": client_tls is TLS 1.2 or 1.3 (%s)" % s.get("client_tls"))
    if backend_tls:
        t.ok(TLS_NAME.match(s.get("backend_tls", "")),
             name + ": backend_tls is TLS 1.2 or 1.3 (%s)"
             % s.get("backend_tls"))
    else:
        t.is_(s.get("backend_tls"), "none", name + ": backend_tls none")
    t.is_(s.get("verify"), want_verify, name + ": verify=" + want_verify)
    t.is_(s.get("login"), "ok", name + ": login=ok")
    if not t.is_(s.get("status"), "0", name + ": status=0"):
        t.diag("reason: %s" % s.get("reason"))
    return s


def smtplib_session(g, implicit, bodies, name):
    """Log in as Alice and send each body in one session."""
    ctx = ms.client_context(certdir)
    ids = []
    before = len(g.summaries())
    try:
        if implicit:
            smtp = smtplib.SMTP_SSL("127.0.0.1", g.port, timeout=20,
                                    context=ctx)
        else:
            smtp = smtplib.SMTP("127.0.0.1", g.port, timeout=20)
            smtp.ehlo()
            smtp.starttls(context=ctx)
        smtp.ehlo()
        code, text = ms.smtp_auth_plain(smtp, ms.ALICE, ms.ALICE_PW)
        t.is_(code, 235, name + ": AUTH PLAIN accepted")
        for label, body in bodies:
            test_id = new_id()
            refused = smtp.sendmail(ms.BOB, [ms.ALICE],
                                    message(test_id, body))
            t.is_(refused, {}, name + ": %s accepted" % label)
            ids.append((test_id, label, body))
        smtp.quit()
    except (OSError, smtplib.SMTPException) as e:
        t.ok(False, name + ": session failed: %r" % e)
        t.diag(g.log()[-3000:])
    summary_ok(g, before, name)
    for test_id, label, body in ids:
        arrived(test_id, body, "%s: %s" % (name, label))


def swaks_session(g, implicit, body, name):
    test_id = new_id()
    path = os.path.join(base, test_id + ".eml")
    # swaks ends DATA with CRLF.CRLF whether or not the text ends with
    # a line end: leave the last one to it.
    with open(path, "wb") as f:
        f.write(message(test_id, body)[:-2])
    before = len(g.summaries())
    cmd = ["swaks", "--server", "127.0.0.1:%d" % g.port,
           "--tlsc" if implicit else "--tls", "--tls-verify",
           "--tls-ca-path", ca, "--auth", "PLAIN",
           "--auth-user", ms.ALICE, "--auth-password", ms.ALICE_PW,
           "--from", ms.BOB, "--to", ms.ALICE, "--data", "@" + path,
           "--timeout", "20"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    if not t.is_(p.returncode, 0, name + ": swaks exit status"):
        t.diag(p.stdout.decode(errors="replace")[-3000:])
        t.diag(p.stderr.decode(errors="replace")[-1000:])
    summary_ok(g, before, name)
    arrived(test_id, body, name)


# ------------------------------------------- real clients, real Postfix

ALL = list(BODIES.items())
for prog, implicit in (("mailgate-smtp-starttls", False),
                       ("mailgate-smtps", True)):
    for security, port in (("starttls", postfix.submission_port),
                           ("tls", postfix.submissions_port)):
        g = gw.Gateway(prog, base, gw.smtp_settings(
            certdir, "localhost", port, security)).start()
        name = "%s -> %s" % (prog, security)
        smtplib_session(g, implicit, ALL, "smtplib " + name)
        swaks_session(g, implicit, BODIES["dots"] + BODIES["8-bit"] +
                      BODIES["long lines"], "swaks " + name)
        g.stop()


# ------------------------------- plaintext backend, allowed for tests

def fake_server(peer, sock):
    """A plaintext SMTP server that takes one message."""
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        verb = line[:4].upper()
        if not line or verb == b"QUIT":
            sock.sendall(b"221 bye\r\n")
            return
        if verb == b"EHLO":
            sock.sendall(b"250-fake.example\r\n250-8BITMIME\r\n"
                         b"250 AUTH PLAIN\r\n")
        elif verb == b"AUTH":
            sock.sendall(b"235 2.7.0 ok\r\n")
        elif verb == b"DATA":
            sock.sendall(b"354 go\r\n")
            start = len(peer.received)
            while not peer.received.endswith(b"\r\n.\r\n"):
                if not peer.recv_line(sock):
                    return
            peer.data = peer.received[start:]
            sock.sendall(b"250 2.0.0 queued\r\n")
        else:
            sock.sendall(b"250 ok\r\n")


peer = gw.ScriptedPeer(fake_server)
peer.data = None
g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
    certdir, "127.0.0.1", peer.port, "none",
    allow_plaintext_backend="yes")).start()
body = BODIES["dots"] + BODIES["8-bit"]
msg = message(new_id(), body)
before = len(g.summaries())
try:
    smtp = smtplib.SMTP("127.0.0.1", g.port, timeout=20)
    smtp.starttls(context=ms.client_context(certdir))
    smtp.ehlo()
    t.is_(ms.smtp_auth_plain(smtp, ms.ALICE, ms.ALICE_PW)[0], 235,
          "plaintext backend: AUTH relayed")
    t.is_(smtp.sendmail(ms.BOB, [ms.ALICE], msg), {},
          "plaintext backend: message accepted")
    smtp.quit()
except (OSError, smtplib.SMTPException) as e:
    t.ok(False, "plaintext backend: session failed: %r" % e)
summary_ok(g, before, "plaintext backend", want_verify="none",
           backend_tls=False)
peer.stop()
# What smtplib put on the wire: leading dots doubled, then the end mark.
stuffed = re.sub(rb"(?m)^\.", b"..", msg) + b".\r\n"
t.ok(peer.data == stuffed, "plaintext backend: DATA bytes unchanged")
if peer.data != stuffed:
    t.diag("got %r...\nwant %r..." % ((peer.data or b"")[:200],
                                       stuffed[:200]))
t.ok("event=warning backend leg is plaintext" in g.log(),
     "plaintext backend: warning logged")
t.is_(peer.errors, [], "plaintext backend: scripted peer had no errors")

t.done()
