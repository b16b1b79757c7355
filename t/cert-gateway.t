#!/usr/bin/python3
"""Certificates and trust files that the gateway refuses at start.

The gateway's own chain (cert, key) must be current, match its key and
be ordered leaf first; the backend trust file (ca) must hold at least
one certificate and be readable.  Each refusal is exit status 100 with
a message that names the setting and the file, both with -t and when a
connection is served; on the STARTTLS ports the served client gets
"421 4.3.0" or "* BYE [UNAVAILABLE]" first, and nothing else.
"""

import base64
import os
import re
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()


def cp(name):
    return os.path.join(certdir, name)


EMPTY = os.path.join(base, "empty.pem")
open(EMPTY, "w").close()
MISSING = os.path.join(base, "missing.pem")
GARBAGE = os.path.join(base, "garbage.pem")
with open(GARBAGE, "w") as f:
    f.write("this is not a certificate\n")



def der(tag, body):
    n = len(body)
    size = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 \
        else bytes([0x82, n >> 8, n & 0xff])
    return bytes([tag]) + size + body


def openssl_der(*args):
    return subprocess.run(["openssl", "pkey", "-outform", "DER"] +
                          list(args), check=True, capture_output=True).stdout


# A P-256 key file whose public point is the gateway certificate's but
# whose private scalar is another key's: the public parts match, and
# the key could never sign.
point = openssl_der("-in", cp("gateway-key.pem"), "-pubout")[-65:]
other = openssl_der("-in", cp("backend-key.pem"), "-traditional")
at = other.index(bytes.fromhex("020101" "0420")) + 5
P256 = bytes.fromhex("06082a8648ce3d030107")
BADPRIV = os.path.join(base, "inconsistent-key.pem")
with open(BADPRIV, "w") as f:
    f.write("-----BEGIN EC PRIVATE KEY-----\n%s-----END EC PRIVATE KEY-----\n"
            % base64.encodebytes(der(0x30, bytes.fromhex("020101") +
                                     der(0x04, other[at:at + 32]) +
                                     der(0xa0, P256) +
                                     der(0xa1, der(0x03, b"\0" + point)))
                                 ).decode())

# For the unreadable case the gateway runs as nobody: it then needs
# copies of its own files that nobody can read.
PRIV = os.path.join(base, "nobody")
os.makedirs(PRIV)
os.chmod(PRIV, 0o755)
for name in ("gateway.pem", "gateway-key.pem", "ca.pem"):
    shutil.copy(cp(name), PRIV)
    os.chmod(os.path.join(PRIV, name), 0o644)
UNREADABLE = os.path.join(PRIV, "unreadable-ca.pem")
shutil.copy(cp("ca.pem"), UNREADABLE)
os.chmod(UNREADABLE, 0o000)
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups"]


def settings(proto, **more):
    s = {"cert": cp("gateway.pem"), "key": cp("gateway-key.pem"),
         "ca": cp("ca.pem"), proto + ".host": "localhost",
         proto + ".port": "1", proto + ".security": "tls"}
    s.update(more)
    return s


def argv(prog, s, check):
    args = [os.path.join(gw.TOP, prog), "-e"]
    if check:
        args.append("-t")
    for key, value in s.items():
        args += ["-o", "%s=%s" % (key, value)]
    return args


def check_run(prog, s, prefix=()):
    """prog -t: (exit status, stderr)."""
    p = subprocess.run(list(prefix) + argv(prog, s, True),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return p.returncode, p.stdout + p.stderr


def served_run(prog, s, prefix=()):
    """prog serving one connection on a socket, as inetd would start it:
    (exit status, what the client got, stderr)."""
    client, server = socket.socketpair()
    errpath = os.path.join(base, "served.err")
    with open(errpath, "wb") as err:
        p = subprocess.Popen(list(prefix) + argv(prog, s, False),
                             stdin=server, stdout=server, stderr=err)
    server.close()
    client.settimeout(10)
    got = b""
    try:
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    client.close()
    try:
        status = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        status = p.wait()
    with open(errpath, "rb") as f:
        return status, got, f.read()


REFUSAL = {
    "mailgate-smtp-starttls":
        b"421 4.3.0 Service not available (configuration error)\r\n",
    "mailgate-imap-starttls":
        b"* BYE [UNAVAILABLE] Service not available "
        b"(configuration error)\r\n",
    "mailgate-smtps": b"",
    "mailgate-imaps": b"",
}

# (name, settings, the setting and the file the message must name, a
# pattern for the rest of the message, run as nobody)
CASES = [
    ("own certificate expired",
     {"cert": cp("expired.pem"), "key": cp("expired-key.pem")},
     "cert", cp("expired.pem"), r"expired on 2002-01-01", False),
    ("own certificate not yet valid",
     {"cert": cp("notyet.pem"), "key": cp("notyet-key.pem")},
     "cert", cp("notyet.pem"), r"not valid before 2090-01-01", False),
    ("own key does not match",
     {"key": cp("backend-key.pem")},
     "key", cp("backend-key.pem"), r"does not match cert " +
     re.escape(cp("gateway.pem")), False),
    ("own key inconsistent (the certificate's public point, another "
     "key's scalar)",
     {"key": BADPRIV}, "key", BADPRIV, r"the private key is inconsistent",
     False),
    ("own chain intermediate first",
     {"cert": cp("chained-reversed.pem"), "key": cp("chained-key.pem")},
     "cert", cp("chained-reversed.pem"), r"not sorted", False),
    ("ca file empty", {"ca": EMPTY}, "ca", EMPTY, r"no certificates",
     False),
    ("ca file missing", {"ca": MISSING}, "ca", MISSING,
     r"No such file or directory", False),
    ("ca file without a certificate", {"ca": GARBAGE}, "ca", GARBAGE,
     r"no certificates", False),
    ("ca file a directory", {"ca": base}, "ca", base, r".", False),
    ("ca file unreadable",
     {"cert": os.path.join(PRIV, "gateway.pem"),
      "key": os.path.join(PRIV, "gateway-key.pem"), "ca": UNREADABLE},
     "ca", UNREADABLE, r"Permission denied", True),
]

PROGS = ("mailgate-smtp-starttls", "mailgate-imap-starttls",
         "mailgate-smtps", "mailgate-imaps")

# Controls: the same programs start with the good files, and with a
# chain that is leaf first, and as nobody with the readable copies.
for name, more, prefix in (
        ("good files", {}, ()),
        ("own chain leaf first", {"cert": cp("chained-full.pem"),
                                  "key": cp("chained-key.pem")}, ()),
        ("readable copies as nobody",
         {"cert": os.path.join(PRIV, "gateway.pem"),
          "key": os.path.join(PRIV, "gateway-key.pem"),
          "ca": os.path.join(PRIV, "ca.pem")}, AS_NOBODY)):
    for prog in ("mailgate-smtps", "mailgate-imaps"):
        proto = "smtp" if "smtp" in prog else "imap"
        status, out = check_run(prog, settings(proto, **more), prefix)
        t.ok(status == 0 and b"configuration ok" in out,
             "%s -t, %s: accepted" % (prog, name)) or t.diag(out)


def message_ok(out, setting, path, pattern):
    """One config-error line that names the setting, then the file."""
    text = out.decode("utf-8", "replace")
    line = re.search(r"event=config-error (\S+) (\S+?):? (.*)", text)
    return (line is not None and line.group(1) == setting and
            line.group(2) == path and re.search(pattern, line.group(3))
            is not None and "configuration ok" not in text)


for name, more, setting, path, pattern, nobody in CASES:
    prefix = AS_NOBODY if nobody else ()
    for prog in PROGS:
        proto = "smtp" if "smtp" in prog else "imap"
        s = settings(proto, **more)
        status, out = check_run(prog, s, prefix)
        t.is_(status, 100, "%s -t, %s: exit 100" % (prog, name))
        t.ok(message_ok(out, setting, path, pattern),
             "%s -t, %s: the message names %s %s" % (prog, name, setting,
                                                     os.path.basename(path))
             ) or t.diag(out)
        status, got, err = served_run(prog, s, prefix)
        t.is_(status, 100, "%s serving, %s: exit 100" % (prog, name))
        t.is_(got, REFUSAL[prog], "%s serving, %s: the client gets %s" % (
            prog, name, REFUSAL[prog].split(b" (")[0].decode() or
            "nothing"))
        t.ok(message_ok(err, setting, path, pattern),
             "%s serving, %s: the log names %s" % (prog, name, setting)
             ) or t.diag(err)

# From a configuration file the message still names the setting.
conf = os.path.join(base, "expired.conf")
with open(conf, "w") as f:
    f.write("cert = %s\nkey = %s\nca = %s\n[smtp]\nhost = localhost\n" % (
        cp("expired.pem"), cp("expired-key.pem"), cp("ca.pem")))
p = subprocess.run([os.path.join(gw.TOP, "mailgate-smtp-starttls"), "-e",
                    "-t", "-c", conf], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   timeout=20)
t.is_(p.returncode, 100, "config file, own certificate expired: exit 100")
t.ok(message_ok(p.stdout, "cert", cp("expired.pem"), r"expired on"),
     "config file, own certificate expired: the message names cert"
     ) or t.diag(p.stdout)

t.done()
