#!/usr/bin/python3
"""A whole IMAP session piped through mailgate-imap-starttls on stdin
and stdout, as a shell script would: with allow_plaintext_clients the
backend's answers come back and the program exits 0 with a warning
logged; without it, LOGIN is still refused before TLS."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402
from mailstack import ALICE, ALICE_PW, BOB, BOB_PW  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()
dovecot = mailstack.Dovecot(os.path.join(base, "dovecot"), certdir)
dovecot.start()
PROG = os.path.join(gateway.TOP, "mailgate-imap-starttls")


def pipe(script, plaintext_clients=True):
    """Run the gateway on script; (status, stdout, stderr text)."""
    settings = gateway.imap_settings(certdir, "127.0.0.1",
                                     dovecot.imap_port, "starttls")
    if plaintext_clients:
        settings["allow_plaintext_clients"] = "yes"
    argv = [PROG, "-e", "-v", "-v"]
    for key, value in settings.items():
        argv += ["-o", "%s=%s" % (key, value)]
    p = subprocess.run(argv, input=script, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def tagged_line(out, tag):
    m = re.search(rb"^%s (OK|NO|BAD)\b[^\r\n]*" % re.escape(tag), out, re.M)
    return m.group(0) if m else b""


SECRETS = [ALICE_PW, "s3cret pass", BOB_PW,
           mailstack.sasl_plain(ALICE, ALICE_PW)]

# Quoted LOGIN.
script = (b"a CAPABILITY\r\nb LOGIN %s %s\r\nc SELECT INBOX\r\n"
          b"d LOGOUT\r\n" % (BOB.encode(), BOB_PW.encode()))
status, out, err = pipe(script)
t.is_(status, 0, "quoted LOGIN session: exit status 0") or t.diag(err)
t.ok(re.search(rb"^\* CAPABILITY IMAP4rev1 .*AUTH=PLAIN", out, re.M) and
     tagged_line(out, b"a").startswith(b"a OK"),
     "CAPABILITY answered by the backend") or t.diag(out)
caps = re.search(rb"^\* CAPABILITY [^\r\n]*", out, re.M)
t.ok(caps and b"LOGINDISABLED" not in caps.group(0),
     "the backend's LOGINDISABLED does not reach the plaintext client")
t.ok(tagged_line(out, b"b").startswith(b"b OK"), "LOGIN accepted")
t.ok(tagged_line(out, b"c").startswith(b"c OK") and b"EXISTS" in out,
     "SELECT answered")
t.ok(b"* BYE" in out and tagged_line(out, b"d").startswith(b"d OK"),
     "LOGOUT answered")
t.ok(re.search(r"warning: .*plaintext clients", err),
     "a warning about plaintext clients is logged")
summary = [gateway.parse_fields(x) for x in err.splitlines()
           if "event=end " in x]
t.ok(len(summary) == 1 and summary[0].get("login") == "ok" and
     summary[0].get("status") == "0" and
     re.match(r"TLS1\.[23]/", summary[0].get("backend_tls", "")),
     "one summary line: login=ok status=0, backend leg TLS") \
    or t.diag(summary)
t.ok(not [s for s in SECRETS if s in err], "no password in the log")

# Literals: synchronising for the user, non-synchronising (LITERAL+)
# for the password, and SASL with an initial response.
pw = ALICE_PW.encode()
script = (b"a LOGIN {%d}\r\n%s {%d+}\r\n%s\r\nb NOOP\r\nc LOGOUT\r\n"
          % (len(ALICE), ALICE.encode(), len(pw), pw))
status, out, err = pipe(script)
t.is_(status, 0, "literal LOGIN session: exit status 0") or t.diag(err)
t.ok(re.search(rb"^\+", out, re.M), "the backend's + is passed on")
t.ok(tagged_line(out, b"a").startswith(b"a OK"),
     "LOGIN with literals accepted") or t.diag(out)
t.ok(tagged_line(out, b"c").startswith(b"c OK"), "LOGOUT answered")
t.ok(not [s for s in SECRETS if s in err], "no password in the log")

script = (b"a AUTHENTICATE PLAIN %s\r\nb LOGOUT\r\n"
          % mailstack.sasl_plain(ALICE, ALICE_PW).encode())
status, out, err = pipe(script)
t.is_(status, 0, "AUTHENTICATE session: exit status 0") or t.diag(err)
t.ok(tagged_line(out, b"a").startswith(b"a OK"),
     "AUTHENTICATE PLAIN with initial response accepted") or t.diag(out)
t.ok(not [s for s in SECRETS if s in err], "no password in the log")

# Without the test switch, STARTTLS is enforced on a pipe too.
script = (b"a LOGIN %s %s\r\nb LOGOUT\r\n" % (BOB.encode(),
                                              BOB_PW.encode()))
status, out, err = pipe(script, plaintext_clients=False)
t.ok(tagged_line(out, b"a").startswith(b"a NO [PRIVACYREQUIRED]"),
     "without allow_plaintext_clients: LOGIN refused") or t.diag(out)
t.ok(out.startswith(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED]"),
     "without allow_plaintext_clients: the STARTTLS greeting")
t.is_(status, 0, "without allow_plaintext_clients: LOGOUT, exit 0")
t.ok("plaintext clients" not in err, "and no plaintext warning")

t.done()
