#!/usr/bin/python3
"""backend_session_cache: the backend leg's TLS session resumed by the
next process.

Against a private Postfix (whose ticket keys all its processes share)
the second session through mailgate-smtps is resumed and says
verify=resumed, and mail still goes through.  The cache directory must
be the gateway's own with mode 0700;
a cache file that is garbage, too old, or written for other settings
(even under this file's name) is not offered, and the handshake is a full one with the certificate
checked.  A directory that is not private fails the configuration
check; a serving instance only warns and makes full handshakes.
Against Dovecot, whose login processes each have their own
ticket key, the ticket is declined and every session still works."""

import hashlib
import imaplib
import os
import shutil
import smtplib
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
dovecot, postfix = ms.start_stack(base, certdir)
CACHE = os.path.join(base, "resume-cache")
os.makedirs(CACHE)
os.chmod(CACHE, 0o700)
ctx = ms.client_context(certdir)


def smtps_gateway(cache=CACHE, **more):
    s = gw.smtp_settings(certdir, "localhost", postfix.submissions_port,
                         "tls", backend_session_cache=cache, **more)
    return gw.Gateway("mailgate-smtps", base, s).start()


def send(g, subject):
    """One message through g with smtplib; the summary line after."""
    before = len(g.summaries())
    try:
        with smtplib.SMTP_SSL("127.0.0.1", g.port, context=ctx,
                              timeout=20) as c:
            c.login(ms.BOB, ms.BOB_PW)
            c.sendmail(ms.BOB, [ms.ALICE],
                       b"Subject: %s\r\n\r\nresume\r\n" % subject.encode())
    except (OSError, smtplib.SMTPException) as e:
        t.diag("send: %r" % e)
    found = g.wait_summaries(before + 1)
    return found[-1] if len(found) > before else {}


def cache_files():
    return sorted(os.listdir(CACHE))


g = smtps_gateway()
first = send(g, "resume 1")
t.is_(first.get("status"), "0", "first session: status 0") or t.diag(g.log())
t.is_(first.get("verify"), "ok", "first session: full handshake, verify=ok")
files = cache_files()
t.is_(len(files), 1, "one cache file written") or t.diag(repr(files))
path = os.path.join(CACHE, files[0]) if files else CACHE
mode = os.stat(path).st_mode & 0o777
t.is_(oct(mode), oct(0o600), "the cache file is mode 0600")

second = send(g, "resume 2")
t.is_(second.get("status"), "0", "second session: status 0")
t.is_(second.get("verify"), "resumed", "second session: verify=resumed")
t.ok(second.get("backend_tls", "").endswith("/resumed"),
     "second session: backend_tls says resumed") or t.diag(repr(second))
t.ok(ms.wait_for_mail(dovecot, ms.ALICE, timeout=15,
                      match=b"Subject: resume 2\r\n"),
     "the mail of the resumed session arrived")

# Garbage in the file: not usable, so a full handshake, then replaced.
with open(path, "wb") as f:
    f.write(b"\x00garbage" * 20)
os.chmod(path, 0o600)
third = send(g, "resume 3")
t.is_((third.get("status"), third.get("verify")), ("0", "ok"),
      "garbage cache file: full handshake, status 0")
fourth = send(g, "resume 4")
t.is_(fourth.get("verify"), "resumed", "after it, resumed again")

# Cut short: the checksum fails, a full handshake, then replaced.
with open(path, "rb") as f:
    whole = f.read()
t.ok(whole[:4] == b"MGS1" and len(whole) > 300, "the file starts MGS1")
for size in (64, 200, len(whole) - 1):
    with open(path, "wb") as f:
        f.write(whole[:size])
    got = send(g, "resume cut %d" % size)
    t.is_((got.get("status"), got.get("verify")), ("0", "ok"),
          "cache file cut to %d bytes: full handshake, status 0" % size) \
        or t.diag(g.log()[-2000:])


def set_since(path, since):
    """Rewrite the time of the full handshake, with a valid checksum."""
    with open(path, "rb") as f:
        data = f.read()
    head = data[:4] + struct.pack("<Q", int(since))
    key = os.path.basename(path).split("-", 1)[1].encode()
    digest = hashlib.sha256(head + key + data[44:]).digest()
    with open(path, "wb") as f:
        f.write(head + digest + data[44:])


def since_of(path):
    with open(path, "rb") as f:
        return struct.unpack("<Q", f.read(12)[4:])[0]


# Too old: the full handshake behind it was two hours ago.
send(g, "resume 4b")
set_since(path, time.time() - 2 * 3600)
fifth = send(g, "resume 5")
t.is_((fifth.get("status"), fifth.get("verify")), ("0", "ok"),
      "a session from a full handshake two hours ago is not offered")

# A file others may read is not offered either.
os.chmod(path, 0o644)
sixth = send(g, "resume 6")
t.is_(sixth.get("verify"), "ok", "a cache file of mode 0644 is not offered")
g.stop()

# Other settings, other file: verified in full under them first.
g = smtps_gateway(backend_tls_priority="NORMAL")
seventh = send(g, "resume 7")
t.is_(seventh.get("verify"), "ok",
      "another backend priority: its own cache file, full handshake")
t.is_(len(cache_files()), 2, "two cache files now")
g.stop()

# The file of the other settings renamed to this one's name: its
# checksum covers the settings' key, so it is not offered.
other = [f for f in cache_files() if os.path.join(CACHE, f) != path]
if other:
    shutil.copy2(os.path.join(CACHE, other[0]), path)
g = smtps_gateway()
renamed = send(g, "resume renamed")
t.is_((renamed.get("status"), renamed.get("verify")), ("0", "ok"),
      "a file of other settings under this name: full handshake")
g.stop()

# The directory must be private.
for mode, why in ((0o755, "open to group or others"),
                  (0o770, "open to group or others")):
    os.chmod(CACHE, mode)
    p = subprocess.run(gw.Gateway("mailgate-smtps", base, gw.smtp_settings(
        certdir, "localhost", postfix.submissions_port, "tls",
        backend_session_cache=CACHE)).argv() + ["-t"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    t.is_(p.returncode, 100, "cache directory mode %o: exit 100" % mode)
    t.ok(why.encode() in p.stderr and b"backend_session_cache" in p.stderr,
         "cache directory mode %o: the error says why" % mode) or t.diag(
        p.stderr.decode(errors="replace"))
# Serving, a directory that is not private is not used, and sessions
# still work with full handshakes.
os.chmod(CACHE, 0o755)
g = smtps_gateway()
got = send(g, "resume open dir")
t.is_((got.get("status"), got.get("verify")), ("0", "ok"),
      "serving with a directory of mode 755: full handshake, status 0")
t.ok("open to group or others" in g.log() and
     "backend sessions are not resumed" in g.log(),
     "serving with a directory of mode 755: a warning says so")
g.stop()
os.chmod(CACHE, 0o700)
for value, why in (("relative/dir", "not an absolute path"),
                   (os.path.join(base, "missing"), "No such file"),
                   (path, "not a directory")):
    p = subprocess.run(gw.Gateway("mailgate-smtps", base, gw.smtp_settings(
        certdir, "localhost", postfix.submissions_port, "tls",
        backend_session_cache=value)).argv() + ["-t"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    t.is_(p.returncode, 100, "backend_session_cache %s: exit 100" % value)
    t.ok(why.encode() in p.stderr, "backend_session_cache %s: says %s"
         % (os.path.basename(value), why)) or t.diag(
        p.stderr.decode(errors="replace"))

# A backend that hands out a new ticket in each resumed session (OpenSSL
# does): the renewed ticket keeps the time of the first full handshake,
# so an hour after it the certificate is checked in full again.
def backend_context():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(os.path.join(certdir, "backend.pem"),
                      os.path.join(certdir, "backend-key.pem"))
    return c


BACKEND_CTX = backend_context()


def tls_backend(peer, sock):
    tls = BACKEND_CTX.wrap_socket(sock, server_side=True)
    gw.smtp_backend(peer, tls)


RENEW = os.path.join(base, "renew-cache")
os.makedirs(RENEW)
os.chmod(RENEW, 0o700)
peer = gw.ScriptedPeer(tls_backend, connections=4)
s = gw.smtp_settings(certdir, "localhost", peer.port, "tls",
                     backend_session_cache=RENEW)
g = gw.Gateway("mailgate-smtps", base, s).start()


def ehlo_quit(g):
    before = len(g.summaries())
    try:
        with smtplib.SMTP_SSL("127.0.0.1", g.port, context=ctx,
                              timeout=20) as c:
            c.ehlo("client")
    except (OSError, smtplib.SMTPException) as e:
        t.diag("ehlo: %r" % e)
    found = g.wait_summaries(before + 1)
    return found[-1] if len(found) > before else {}


r1 = ehlo_quit(g)
files = os.listdir(RENEW)
rpath = os.path.join(RENEW, files[0]) if files else RENEW
t.is_((r1.get("verify"), len(files)), ("ok", 1),
      "OpenSSL backend: full handshake, one cache file")
first_since = since_of(rpath) if files else 0
time.sleep(1.1)
r2 = ehlo_quit(g)
t.is_(r2.get("verify"), "resumed", "OpenSSL backend: resumed")
t.is_(since_of(rpath) if files else None, first_since,
      "the renewed ticket keeps the time of the full handshake")
set_since(rpath, time.time() - 3601)
r3 = ehlo_quit(g)
t.is_(r3.get("verify"), "ok",
      "an hour after the full handshake: full handshake again")
t.ok(since_of(rpath) > first_since if files else False,
     "and the cache file then carries the new time")
g.stop()
peer.stop()

# Dovecot declines the ticket (each login process its own key): every
# session is a full one, and works.
s = gw.imap_settings(certdir, "localhost", dovecot.imaps_port, "tls",
                     backend_session_cache=CACHE)
g = gw.Gateway("mailgate-imaps", base, s).start()
for i in (1, 2):
    before = len(g.summaries())
    try:
        c = imaplib.IMAP4_SSL("127.0.0.1", g.port, ssl_context=ctx,
                              timeout=20)
        c.login(ms.BOB, ms.BOB_PW)
        c.logout()
    except (OSError, imaplib.IMAP4.error) as e:
        t.diag("imap: %r" % e)
    found = g.wait_summaries(before + 1)
    end = found[-1] if len(found) > before else {}
    t.is_((end.get("status"), end.get("login")), ("0", "ok"),
          "IMAP session %d through the cache: status 0, login ok" % i)
g.stop()
t.done()
