#!/usr/bin/python3
"""A whole SMTP session piped through mailgate-smtp-starttls, and -t.

With stdin and stdout as pipes (no socket at all) and both test-only
switches on, a script can push a complete session through the gateway
to a plaintext scripted backend: every byte reaches the backend, every
reply comes back, the exit status is 0 and both warnings are logged.
Check mode (-t) accepts a good configuration and names file, line and
setting of a bad one, with exit status 100.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
PROG = os.path.join(gw.TOP, "mailgate-smtp-starttls")
CERT = os.path.join(certdir, "gateway.pem")
KEY = os.path.join(certdir, "gateway-key.pem")

REPLIES = {
    b"EHLO": b"250-fake.example\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n",
    b"AUTH": b"235 2.7.0 fake ok\r\n",
    b"MAIL": b"250 2.1.0 sender ok\r\n",
    b"RCPT": b"250 2.1.5 recipient ok\r\n",
    b"DATA": b"354 go ahead\r\n",
    b"QUIT": b"221 2.0.0 fake bye\r\n",
}
QUEUED = b"250 2.0.0 queued as FAKE1\r\n"


def fake_server(peer, sock):
    """A plaintext SMTP server that answers pipelined commands."""
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        verb = line[:4].upper()
        if not line:
            return
        sock.sendall(REPLIES.get(verb, b"502 5.5.2 what\r\n"))
        if verb == b"QUIT":
            return
        if verb == b"DATA":
            while not peer.received.endswith(b"\r\n.\r\n"):
                if not peer.recv_line(sock):
                    return
            sock.sendall(QUEUED)


def run(args, stdin=b""):
    p = subprocess.run([PROG] + args, input=stdin, capture_output=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


# ------------------------------------------------------ piped session

peer = gw.ScriptedPeer(fake_server)
session = (b"EHLO client.example\r\n"
           b"AUTH PLAIN " + ms.sasl_plain(ms.BOB, ms.BOB_PW).encode() +
           b"\r\n"
           b"MAIL FROM:<" + ms.BOB.encode() + b">\r\n"
           b"RCPT TO:<" + ms.ALICE.encode() + b">\r\n"
           b"DATA\r\n"
           b"Subject: piped\r\n\r\n..stuffed dot\r\n8-bit \xe9\xff\r\n.\r\n"
           b"QUIT\r\n")
status, out, err = run(
    ["-e", "-v", "-o", "allow_plaintext_clients=yes",
     "-o", "allow_plaintext_backend=yes", "-o", "smtp.security=none",
     "-o", "smtp.host=127.0.0.1", "-o", "smtp.port=%d" % peer.port,
     "-o", "hostname=pipe.example", "-o", "cert=" + CERT,
     "-o", "key=" + KEY], session)
peer.stop()

t.is_(status, 0, "piped session: exit status 0")
t.ok(out.startswith(b"220 pipe.example ESMTP"),
     "piped session: the gateway's greeting first")
pos, missing = 0, []
for reply in (b"250-fake.example\r\n", b"250-8BITMIME\r\n",
              REPLIES[b"AUTH"], REPLIES[b"MAIL"], REPLIES[b"RCPT"],
              REPLIES[b"DATA"], QUEUED, REPLIES[b"QUIT"]):
    found = out.find(reply, pos)
    if found < 0:
        missing.append(reply)
    else:
        pos = found + len(reply)
t.is_(missing, [], "piped session: the backend's replies, in order")
t.ok(out.endswith(REPLIES[b"QUIT"]), "piped session: 221 is the last")
t.is_(peer.received, session,
      "piped session: the backend got every byte, unchanged")
t.is_(peer.errors, [], "piped session: scripted backend had no errors")
t.ok("event=warning plaintext clients allowed" in err,
     "piped session: plaintext clients warning")
t.ok("event=warning backend leg is plaintext" in err,
     "piped session: plaintext backend warning")
summary = [gw.parse_fields(line) for line in err.splitlines()
           if "event=end " in line]
t.is_(len(summary), 1, "piped session: one summary line")
s = summary[0] if summary else {}
t.is_((s.get("client_tls"), s.get("backend_tls"), s.get("verify"),
       s.get("login"), s.get("status")), ("none", "none", "none", "ok", "0"),
      "piped session: summary fields")
t.ok(ms.sasl_plain(ms.BOB, ms.BOB_PW) not in err,
     "piped session: no AUTH payload in the log")
if status != 0 or missing:
    t.diag(out.decode(errors="replace"))
    t.diag(err)

# Without the test switch, the same pipe gets a plaintext greeting but
# no login: AUTH before STARTTLS is refused, and nothing is connected.
status, out, err = run(
    ["-e", "-o", "allow_plaintext_backend=yes", "-o", "smtp.security=none",
     "-o", "smtp.host=127.0.0.1", "-o", "smtp.port=%d" % ms.free_port(),
     "-o", "cert=" + CERT, "-o", "key=" + KEY],
    b"EHLO x\r\nAUTH PLAIN AGJvYgBib2I=\r\nQUIT\r\n")
t.is_(status, 0, "pipe without allow_plaintext_clients: exit status 0")
t.ok(b"\r\n530 " in out and out.endswith(b"221 2.0.0 Bye\r\n"),
     "pipe without allow_plaintext_clients: AUTH gets 530, QUIT 221")
t.ok("plaintext clients allowed" not in err,
     "pipe without allow_plaintext_clients: no such warning")

# ----------------------------------------------------- check mode (-t)

good = os.path.join(base, "good.conf")
with open(good, "w") as f:
    f.write("cert = %s\nkey = %s\nca = %s\n\n[smtp]\nhost = localhost\n"
            "security = starttls\nport = 587\n"
            % (CERT, KEY, os.path.join(certdir, "ca.pem")))
status, out, err = run(["-t", "-c", good])
t.is_(status, 0, "-t with a good configuration: exit status 0")
t.ok("configuration ok" in err, "-t with a good configuration: says ok")
t.is_(out, b"", "-t writes nothing to stdout")

BAD = [
    ("security = bogus", "smtp.security", "unknown value"),
    ("port = 70000", "smtp.port", "out of range"),
    ("colour = blue", "smtp.colour", "unknown setting"),
]
for line, setting, words in BAD:
    bad = os.path.join(base, "bad.conf")
    with open(bad, "w") as f:
        f.write("cert = %s\nkey = %s\n# a comment\n[smtp]\nhost = localhost\n"
                "%s\n" % (CERT, KEY, line))
    status, out, err = run(["-t", "-c", bad])
    t.is_(status, 100, "-t, %s: exit status 100" % line)
    where = "%s:6: %s:" % (bad, setting)
    if not t.ok(where in err and words in err,
                "-t, %s: names %s:6: %s" % (line, bad, setting)):
        t.diag(err)
    t.is_(out, b"", "-t, %s: nothing on stdout" % line)

# Found wrong only once the whole file is read, yet named by its line.
with open(bad, "w") as f:
    f.write("cert = %s\nkey = %s\n[smtp]\nhost = localhost\n"
            "security = none\n" % (CERT, KEY))
status, out, err = run(["-t", "-c", bad])
t.is_(status, 100, "-t, none without its switch: exit status 100")
if not t.ok("%s:5: smtp.security:" % bad in err and
            "allow_plaintext_backend" in err,
            "-t, none without its switch: names file:5: smtp.security"):
    t.diag(err)

status, out, err = run(["-t", "-c", good, "-o", "smtp.security=maybe"])
t.is_(status, 100, "-t, bad -o value: exit status 100")
t.ok("smtp.security" in err and "maybe" in err,
     "-t, bad -o value: names the setting and the value")

t.done()
