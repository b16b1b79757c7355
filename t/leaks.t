#!/usr/bin/python3
"""Many sessions leave nothing behind; a few full ones run clean under
valgrind.

1,000 short plaintext sessions (greeting, NOOP, QUIT, answered by the
gateway itself) and 50 TLS sessions through to a scripted backend, all
through one systemd-socket-activate listener: afterwards no gateway
process is left, the listener holds as many descriptors as before, and
every session wrote its summary line with status 0.

Then a few whole sessions (SMTP with STARTTLS on both legs, IMAPS, a
backend that is down, a client that never speaks) run under valgrind
with the connection on a socketpair: no memory error, nothing
definitely lost, and no descriptor open at exit but 0, 1 and 2.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
ctx = ms.client_context(certdir)

PLAIN_SESSIONS = 1000
TLS_SESSIONS = 50


def read_to_close(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_reply(sock):
    """One SMTP reply, all its lines."""
    data = b""
    sock.settimeout(10)
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        last = data[:-2].rsplit(b"\r\n", 1)[-1] if data.endswith(
            b"\r\n") else b""
        if last[3:4] == b" ":
            return data


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def fds(pid):
    path = "/proc/%d/fd" % pid
    return sorted((name, os.readlink(os.path.join(path, name)))
                  for name in os.listdir(path))


def backend_context():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(os.path.join(certdir, "backend.pem"),
                      os.path.join(certdir, "backend-key.pem"))
    return c


# ------------------------------------------- 1,050 sessions, one listener

peer = gw.ScriptedPeer(gw.smtp_backend, connections=TLS_SESSIONS)
g = gw.Gateway("mailgate-smtp-starttls", base, gw.smtp_settings(
    certdir, "127.0.0.1", peer.port, "none", allow_plaintext_backend="yes",
    hostname="gw.example.test"), verbose=0).start()
listener = g.proc.pid
fds_before = fds(listener)


def plain_session(_):
    with g.connect() as sock:
        read_reply(sock)
        sock.sendall(b"NOOP\r\nQUIT\r\n")
        got = read_to_close(sock)
    return b"221 " in got


def tls_session(_):
    with g.connect() as sock:
        read_reply(sock)
        sock.sendall(b"EHLO c.example\r\n")
        read_reply(sock)
        sock.sendall(b"STARTTLS\r\n")
        read_reply(sock)
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"EHLO c.example\r\n")
        ehlo = read_reply(tls)
        tls.sendall(b"NOOP\r\nQUIT\r\n")
        got = read_to_close(tls)
        tls.close()
    return ehlo.startswith(b"250") and b"221 2.0.0 fake bye" in got


start = time.monotonic()
with ThreadPoolExecutor(8) as pool:
    plain_ok = sum(pool.map(plain_session, range(PLAIN_SESSIONS)))
# The scripted backend serves one connection at a time.
tls_ok = sum(tls_session(i) for i in range(TLS_SESSIONS))
took = time.monotonic() - start
t.note("%d plaintext and %d TLS sessions in %.1f s"
       % (PLAIN_SESSIONS, TLS_SESSIONS, took))
t.is_(plain_ok, PLAIN_SESSIONS, "every plaintext session got its 221")
t.is_(tls_ok, TLS_SESSIONS, "every TLS session reached the backend and "
      "got its 221")

total = PLAIN_SESSIONS + TLS_SESSIONS
summaries = g.wait_summaries(total, timeout=20)
t.is_(len(summaries), total, "one summary line per session")
bad = [s for s in summaries if s.get("status") != "0"]
if not t.is_(len(bad), 0, "every session ended with status 0"):
    t.diag("first: %r" % bad[:2])

try:
    ms.wait_until(lambda: not children(listener), 10,
                  "gateway processes to exit")
except TimeoutError:
    pass
left = children(listener)
if not t.is_(left, [], "no gateway process left behind"):
    for pid in left[:5]:
        try:
            with open("/proc/%d/stat" % pid) as f:
                t.diag(f.read()[:120])
        except OSError:
            pass
fds_after = fds(listener)
if not t.is_(len(fds_after), len(fds_before),
             "the listener holds as many descriptors as before (%d)"
             % len(fds_before)):
    t.diag("before: %r" % fds_before)
    t.diag("after: %r" % fds_after)
g.stop()
peer.stop()
t.ok(not peer.errors, "the scripted backend saw no error") or t.diag(
    peer.errors[:3])


# ------------------------------------------------------------ valgrind

VALGRIND = shutil.which("valgrind")


def under_valgrind(name, prog, settings, client, timeout=60):
    """Run prog under valgrind with a socketpair as its connection;
    client(sock) plays the client.  Return (status, valgrind log)."""
    vlog = os.path.join(base, "valgrind-%s.log" % name.replace(" ", "-"))
    glog = open(os.path.join(base, "gateway-%s.log"
                             % name.replace(" ", "-")), "wb")
    mine, theirs = socket.socketpair()
    argv = [VALGRIND, "--leak-check=full", "--error-exitcode=99",
            "--errors-for-leak-kinds=definite", "--track-fds=yes",
            "--log-file=" + vlog, os.path.join(gw.TOP, prog), "-e", "-v"]
    for key, value in settings.items():
        argv += ["-o", "%s=%s" % (key, value)]
    env = dict(os.environ, REMOTE_ADDR="127.0.0.1", REMOTE_PORT="40000")
    proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=glog,
                            env=env)
    theirs.close()
    glog.close()
    result = {}

    def play():
        try:
            result["ok"] = client(mine)
        except Exception as e:  # reported below
            result["error"] = repr(e)
    th = threading.Thread(target=play, daemon=True)
    th.start()
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        status = proc.wait()
    th.join(10)
    mine.close()
    with open(vlog, errors="replace") as f:
        return status, f.read(), result, vlog


def check_valgrind(name, prog, settings, client, want_status):
    status, text, result, vlog = under_valgrind(name, prog, settings,
                                                client)
    if not t.ok(result.get("ok"), name + ": the client's side went as "
                "expected"):
        t.diag(repr(result))
    t.is_(status, want_status, name + ": exit status %d, not valgrind's 99"
          % want_status)
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    t.ok(errors and errors.group(1) == "0", name + ": no memory errors") \
        or t.diag(text[-2000:])
    lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
    t.ok(lost is None or lost.group(1) == "0",
         name + ": nothing definitely lost") or t.diag(
        lost.group(0) if lost else "")
    # Valgrind lists its own --log-file as inherited: not the program's.
    listed = re.findall(r"Open (?:file descriptor|[\w-]+ socket) (\d+):? ?"
                        r"([^\n]*)", text)
    extra = [(int(fd), what) for fd, what in listed
             if int(fd) > 2 and what.strip() != vlog]
    count = re.search(r"FILE DESCRIPTORS: (\d+) open \((\d+) std\)", text)
    t.ok(count and int(count.group(1)) - int(count.group(2)) ==
         len(listed),
         name + ": every open descriptor was understood") or t.diag(
        count.group(0) if count else "no FILE DESCRIPTORS line")
    t.is_(extra, [], name + ": no descriptor open at exit but 0, 1, 2")
    reach = re.search(r"still reachable: ([\d,]+) bytes in ([\d,]+) "
                      r"blocks", text)
    t.note("%s: exit %d, %s, %s" % (
        name, status, lost.group(0) if lost else "no leak summary",
        reach.group(0) if reach else "nothing still reachable"))


def tls_smtp_backend(peer, sock):
    """SMTP with STARTTLS, then AUTH, a message and QUIT."""
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        if line[:4].upper() == b"EHLO":
            sock.sendall(b"250-fake.example\r\n250 STARTTLS\r\n")
        elif line.upper() == b"STARTTLS\r\n":
            sock.sendall(b"220 2.0.0 go ahead\r\n")
            break
        else:
            return
    tls = backend_context().wrap_socket(sock, server_side=True)
    replies = {b"EHLO": b"250-fake.example\r\n250 AUTH PLAIN\r\n",
               b"AUTH": b"235 2.7.0 ok\r\n", b"MAIL": b"250 2.1.0 ok\r\n",
               b"RCPT": b"250 2.1.5 ok\r\n", b"DATA": b"354 go on\r\n",
               b"QUIT": b"221 2.0.0 bye\r\n"}
    while True:
        line = peer.recv_line(tls)
        if not line:
            return
        verb = line[:4].upper()
        tls.sendall(replies.get(verb, b"500 5.5.2 what\r\n"))
        if verb == b"QUIT":
            return
        if verb == b"DATA":
            while not peer.recv_line(tls).startswith(b".\r\n"):
                pass
            tls.sendall(b"250 2.0.0 queued\r\n")


def smtp_client(sock):
    read_reply(sock)
    sock.sendall(b"EHLO c.example\r\n")
    read_reply(sock)
    sock.sendall(b"STARTTLS\r\n")
    read_reply(sock)
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    out = b""
    for cmd in (b"EHLO c.example\r\n",
                b"AUTH PLAIN " + ms.sasl_plain(ms.BOB, ms.BOB_PW).encode() +
                b"\r\n", b"MAIL FROM:<bob@example.test>\r\n",
                b"RCPT TO:<alice@example.test>\r\n", b"DATA\r\n",
                b"Subject: x\r\n\r\nbody\r\n.\r\n", b"QUIT\r\n"):
        tls.sendall(cmd)
        out += read_reply(tls)
    out += read_to_close(tls)
    return b"235 " in out and b"250 2.0.0 queued" in out and \
        b"221 2.0.0 bye" in out


def imaps_backend(peer, sock):
    tls = backend_context().wrap_socket(sock, server_side=True)
    tls.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n")
    while True:
        line = peer.recv_line(tls)
        if not line:
            return
        tag, _, rest = line.partition(b" ")
        verb = rest.split(b" ", 1)[0].strip().upper()
        if verb == b"CAPABILITY":
            tls.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
        if verb == b"LOGOUT":
            tls.sendall(b"* BYE fake\r\n" + tag + b" OK bye\r\n")
            return
        tls.sendall(tag + b" OK done\r\n")


def imaps_client(sock):
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    out = b""
    tls.settimeout(30)
    for cmd in (b"a CAPABILITY\r\n", b"b LOGIN bob bobpw\r\n",
                b"c NOOP\r\n", b"d LOGOUT\r\n"):
        tls.sendall(cmd)
        tag = cmd.split(b" ", 1)[0] + b" "
        while not any(x.startswith(tag) for x in out.split(b"\r\n")):
            chunk = tls.recv(4096)
            if not chunk:
                break
            out += chunk
    out += read_to_close(tls)
    return b"b OK" in out and b"d OK" in out


def down_client(sock):
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    tls.settimeout(30)
    read_reply(tls)
    tls.sendall(b"EHLO c.example\r\n")
    return read_to_close(tls, 30).startswith(b"421 ")


def silent_client(sock):
    got = read_to_close(sock, 30)
    return got.startswith(b"* OK") and b"* BYE" in got


if VALGRIND is None:
    t.skip("valgrind is not installed", 4 * 6)
elif "ASAN_OPTIONS" in os.environ:
    # make check-sanitize: valgrind cannot run AddressSanitizer builds,
    # and ASan's own leak check covers these sessions there.
    t.skip("AddressSanitizer build", 4 * 6)
else:
    p = gw.ScriptedPeer(tls_smtp_backend)
    check_valgrind("smtp-starttls full session", "mailgate-smtp-starttls",
                   gw.smtp_settings(certdir, "localhost", p.port,
                                    "starttls"), smtp_client, 0)
    p.stop()
    p = gw.ScriptedPeer(imaps_backend)
    check_valgrind("imaps full session", "mailgate-imaps",
                   gw.imap_settings(certdir, "localhost", p.port, "tls"),
                   imaps_client, 0)
    p.stop()
    check_valgrind("smtps, backend down", "mailgate-smtps",
                   gw.smtp_settings(certdir, "localhost", ms.free_port(),
                                    "tls"), down_client, 111)
    check_valgrind("imap-starttls, silent client", "mailgate-imap-starttls",
                   gw.imap_settings(certdir, "localhost", ms.free_port(),
                                    "starttls", handshake_timeout=3),
                   silent_client, 1)

t.done()
