#!/usr/bin/python3
"""Logging to the journal: the programs speak its native protocol on
/run/systemd/journal/socket.  The test runs in a private mount
namespace with a tmpfs on /run, where it binds that socket itself and
reads the datagrams: fields, priorities, the connection id, a message
with a newline in it (the length-prefixed form), and the fall-back to
syslog when the journal socket is there but nobody reads it."""

import os
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))

if os.environ.get("MG_JOURNAL_NS") != "1":
    # Re-run in a mount namespace of our own, so that /run is ours.
    env = dict(os.environ, MG_JOURNAL_NS="1")
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation",
                            "private", "true"], capture_output=True)
        usable = r.returncode == 0
    except OSError:
        usable = False
    if not usable:
        print("1..0 # SKIP needs unshare --mount (root)")
        sys.exit(0)
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                           sys.executable, os.path.abspath(__file__)], env)

import gateway  # noqa: E402
import mailstack  # noqa: E402

t = mailstack.Tap()
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"],
               check=True)
os.makedirs("/run/systemd/journal")
SOCK = "/run/systemd/journal/socket"
journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
journal.bind(SOCK)
journal.settimeout(5)
certdir = mailstack.certs()
base = mailstack.scratch_dir()


def parse(dgram):
    """Fields of one native-protocol datagram; None if malformed."""
    fields = {}
    i = 0
    while i < len(dgram):
        nl = dgram.find(b"\n", i)
        if nl == -1:
            return None
        line = dgram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            if nl + 9 > len(dgram):
                return None
            (n,) = struct.unpack("<Q", dgram[nl + 1:nl + 9])
            v = dgram[nl + 9:nl + 9 + n]
            if dgram[nl + 9 + n:nl + 10 + n] != b"\n":
                return None
            i = nl + 10 + n
        fields[k.decode()] = v.decode(errors="replace")
    return fields


def entries():
    """Every datagram waiting, parsed."""
    out = []
    journal.settimeout(0.5)
    try:
        while True:
            out.append(parse(journal.recv(65536)))
    except socket.timeout:
        pass
    return out


PROG = os.path.join(gateway.TOP, "mailgate-smtps")

# A configuration error: stderr and the journal both get it.
p = subprocess.run([PROG, "-c", "/dev/null", "-o", "smtp.port=x"],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
t.is_(p.returncode, 100, "bad port: exit status 100")
got = entries()
t.is_(len(got), 1, "one journal entry") or t.diag(repr(got))
e = got[0] if got and got[0] else {}
t.ok("event=config-error" in e.get("MESSAGE", "") and
     'smtp.port: "x" is not a number' in e.get("MESSAGE", ""),
     "MESSAGE says which setting is wrong") or t.diag(repr(e))
t.is_(e.get("PRIORITY"), "3", "PRIORITY=3 (err)")
t.is_(e.get("SYSLOG_FACILITY"), "2", "SYSLOG_FACILITY=2 (mail)")
t.is_(e.get("SYSLOG_IDENTIFIER"), "mailgate-smtps", "SYSLOG_IDENTIFIER")
t.ok("MAILGATE_CONN" not in e, "no connection id before a connection")

# A newline inside the message takes the length-prefixed form, whole.
p = subprocess.run([PROG, "-c", "/dev/null", "-o", "smtp.host=a\nb"],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
got = entries()
e = got[0] if got and got[0] else {}
t.is_(p.returncode, 100, "host with a newline: exit status 100")
t.ok('smtp.host: "a\nb" is not a host name' in e.get("MESSAGE", ""),
     "a message with a newline arrives whole") or t.diag(repr(got))


# A whole session, piped, to a scripted plaintext backend.
peer = gateway.ScriptedPeer(gateway.smtp_backend)
settings = gateway.smtp_settings(certdir, "127.0.0.1", peer.port, "none",
                                 allow_plaintext_clients="yes",
                                 allow_plaintext_backend="yes")
argv = [os.path.join(gateway.TOP, "mailgate-smtp-starttls"), "-c",
        "/dev/null", "-v"]
for k, v in settings.items():
    if k != "log":
        argv += ["-o", "%s=%s" % (k, v)]
p = subprocess.run(argv, input=b"EHLO c\r\nNOOP\r\nQUIT\r\n",
                   capture_output=True, timeout=30)
peer.stop()
t.is_(p.returncode, 0, "piped session: exit status 0") or t.diag(
    p.stderr.decode(errors="replace"))
got = [e for e in entries() if e]
ends = [e for e in got if "event=end" in e.get("MESSAGE", "")]
t.is_(len(ends), 1, "one summary line in the journal") or t.diag(repr(got))
e = ends[0] if ends else {}
conn = e.get("MAILGATE_CONN", "")
t.ok(len(conn) == 8 and ("conn=%s " % conn) in e.get("MESSAGE", ""),
     "MAILGATE_CONN matches the conn= of the line") or t.diag(repr(e))
t.ok(all(x.get("MAILGATE_CONN") == conn for x in got),
     "every line of the session carries the same MAILGATE_CONN")
t.ok(" status=0 " in e.get("MESSAGE", ""), "summary says status=0")

# A socket that exists but is not read: the datagram is refused and
# the line goes to syslog instead of being lost.
journal.close()
# /dev/log is the syslog socket: a tmpfs on /dev, in this namespace
# only, with the device nodes the programs use bound back in.
os.makedirs("/run/olddev")
subprocess.run(["mount", "--rbind", "/dev", "/run/olddev"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/dev"],
               check=True)
for node in ("null", "zero", "random", "urandom"):
    open("/dev/" + node, "w").close()
    subprocess.run(["mount", "--bind", "/run/olddev/" + node, "/dev/" + node],
                   check=True)
logsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
logsock.bind("/dev/log")
p = subprocess.run([PROG, "-c", "/dev/null", "-o", "smtp.port=0"],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
t.is_(p.returncode, 100, "journal gone: exit status 100")
logsock.settimeout(2)
try:
    line = logsock.recv(65536).decode(errors="replace")
except (socket.timeout, OSError):
    line = ""
t.ok("mailgate-smtps" in line and "event=config-error" in line,
     "with the journal socket unread the line reaches syslog") or t.diag(
    repr(line))
t.done()
