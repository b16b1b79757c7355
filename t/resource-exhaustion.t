#!/usr/bin/python3
"""Slow, silent, stalled and greedy peers cannot hold a gateway forever
or make it grow.

Client leg: a client that never speaks, one that drips a byte every
half second (the handshake deadline is not reset by it), one that sends
half a TLS ClientHello.  Backend leg: a backend that accepts and never
greets, one that never answers the TLS handshake, one that sends half a
ServerHello.  A client that stops reading while the backend streams
after login: the gateway's memory stays bounded and the backend is held
back.  A client that keeps sending refused commands is disconnected
after max_errors.

Every deadline here is a few seconds; the assertions give each event a
generous upper bound and check that it did happen.
"""

import hashlib
import os
import select
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
ctx = ms.client_context(certdir)

T = 2                     # every timeout under test, in seconds
LIMIT = 3 * T             # a session must have ended by then
SMTP = ("mailgate-smtp-starttls", "mailgate-smtps")
IMAP = ("mailgate-imap-starttls", "mailgate-imaps")


def settings(prog, port, security="starttls", **more):
    make = gw.smtp_settings if prog in SMTP else gw.imap_settings
    return make(certdir, "localhost", port, security,
                hostname="gw.example.test", **more)


def is_smtp(prog):
    return prog in SMTP


def implicit(prog):
    return prog in ("mailgate-smtps", "mailgate-imaps")


def read_to_close(sock, limit):
    """Everything until the peer closes or limit seconds have passed;
    return (data, seconds until the close or None)."""
    start = time.monotonic()
    data = b""
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            return data, None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, None
        except (ConnectionError, ssl.SSLError):
            return data, time.monotonic() - start
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def client_hello():
    """The bytes of a real TLS ClientHello."""
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def gateway_child(g):
    """PIDs of the gateway processes the listener has running now."""
    pid = g.proc.pid
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def vm_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def check_summary(g, name, status, reason):
    s = g.wait_summaries(1)
    s = s[-1] if s else {}
    t.is_(s.get("status"), status, name + ": status=" + status)
    if not t.ok(reason in s.get("reason", ""),
                name + ": reason mentions '%s'" % reason):
        t.diag("reason: %r" % s.get("reason"))
    return s


def ended_in_time(name, took, earliest=T * 0.75):
    """The session ended, not before the deadline and well before
    LIMIT."""
    if not t.ok(took is not None and earliest <= took < LIMIT,
                "%s: ended between %.1f and %d s" % (name, earliest, LIMIT)):
        t.diag("ended after %r s" % took)
    else:
        t.note("%s: ended after %.2f s" % (name, took))


# ------------------------------------------------- a client that is silent

for prog in SMTP + IMAP:
    name = "%s, silent client" % prog
    g = gw.Gateway(prog, base, settings(prog, ms.free_port(),
                                        handshake_timeout=T)).start()
    sock = g.connect()
    got, took = read_to_close(sock, LIMIT + 2)
    sock.close()
    ended_in_time(name, took)
    if implicit(prog):
        t.ok(not got.startswith(b"421") and not got.startswith(b"* "),
             name + ": no plaintext on a TLS port")
        check_summary(g, name, "1", "timed out")
    else:
        last = got.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        want = b"421 4." if is_smtp(prog) else b"* BYE"
        if not t.ok(last.startswith(want),
                    name + ": greeting, then %s" % want.decode()):
            t.diag("got %r" % got)
        check_summary(g, name, "1", "timeout")
    g.stop()


# ---------------------------------- a client that drips one byte at a time

def drip(sock, payload, limit):
    """Send payload one byte every 0.5 s until the gateway closes; return
    (what came back, seconds until the close or None, bytes sent)."""
    start = time.monotonic()
    data = b""
    sent = 0
    while time.monotonic() - start < limit:
        if sent < len(payload):
            try:
                sock.send(payload[sent:sent + 1])
                sent += 1
            except OSError:
                return data, time.monotonic() - start, sent
        end = time.monotonic() + 0.5
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                break
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return data, time.monotonic() - start, sent
            data += chunk
    return data, None, sent


for prog, payload in (
        ("mailgate-smtp-starttls", b"NOOP\r\n" * 20),
        ("mailgate-imap-starttls", b"".join(b"n%d NOOP\r\n" % i
                                            for i in range(20))),
        ("mailgate-smtps", client_hello()),
        ("mailgate-imaps", client_hello())):
    name = "%s, a byte every 0.5 s" % prog
    g = gw.Gateway(prog, base, settings(
        prog, ms.free_port(), handshake_timeout=T,
        **{("smtp" if is_smtp(prog) else "imap") + ".login_timeout": 60}
    )).start()
    sock = g.connect()
    if not implicit(prog):
        # One whole command first: answered, and the clock runs on.
        first = payload.split(b"\n", 1)[0] + b"\n"
        sock.sendall(first)
        payload = payload[len(first):]
    got, took, sent = drip(sock, payload, LIMIT + 2)
    sock.close()
    t.note("%s: %d bytes sent before the close" % (name, sent))
    ended_in_time(name, took)
    if not implicit(prog):
        ok = b"250 " if is_smtp(prog) else b"n0 OK"
        t.ok(ok in got, name + ": the first command was answered, so the "
             "client was heard")
        want = b"421 4." if is_smtp(prog) else b"* BYE"
        last = got.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if not t.ok(last.startswith(want), name + ": ends with " +
                    want.decode()):
            t.diag("got %r" % got[-200:])
        check_summary(g, name, "1", "timeout")
    else:
        check_summary(g, name, "1", "timed out")
    g.stop()


# ------------------------------------- half a ClientHello on the client leg

def read_reply_line(sock, final):
    """Read until a line starting with final (or the close)."""
    data = b""
    sock.settimeout(10)
    while not any(line.startswith(final)
                  for line in data.split(b"\r\n")):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


hello = client_hello()
for prog in ("mailgate-smtps", "mailgate-smtp-starttls",
             "mailgate-imap-starttls"):
    name = "%s, half a ClientHello" % prog
    g = gw.Gateway(prog, base, settings(prog, ms.free_port(),
                                        handshake_timeout=T)).start()
    sock = g.connect()
    start = time.monotonic()
    if prog == "mailgate-smtp-starttls":
        read_reply_line(sock, b"220 ")
        sock.sendall(b"EHLO c.example\r\n")
        read_reply_line(sock, b"250 ")
        sock.sendall(b"STARTTLS\r\n")
        read_reply_line(sock, b"220 ")
    elif prog == "mailgate-imap-starttls":
        read_reply_line(sock, b"* OK")
        sock.sendall(b"s STARTTLS\r\n")
        read_reply_line(sock, b"s OK")
    sock.sendall(hello[:len(hello) // 2])
    got, _ = read_to_close(sock, LIMIT + 2)
    sock.close()
    took = time.monotonic() - start if got is not None else None
    ended_in_time(name, took)
    check_summary(g, name, "1", "timed out")
    g.stop()


# --------------------------------------------------- stalled backends

def backend_context():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(os.path.join(certdir, "backend.pem"),
                      os.path.join(certdir, "backend-key.pem"))
    return c


def mute_backend(peer, sock):
    """Accepts, then says nothing."""
    peer.recv_some(sock, LIMIT + 2)


def half_server_hello(peer, sock):
    """Reads the ClientHello, sends the first part of its answer."""
    sock.settimeout(LIMIT)
    data = sock.recv(65536)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = backend_context().wrap_bio(inc, out, server_side=True)
    inc.write(data)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    flight = out.read()
    peer.half_sent = len(flight) // 2
    sock.sendall(flight[:len(flight) // 2])
    peer.recv_some(sock, LIMIT + 2)


def starttls_then_half(peer, sock):
    """A plaintext SMTP or IMAP backend that says go ahead to STARTTLS
    and then stalls halfway through its ServerHello."""
    smtp = peer.smtp
    sock.sendall(b"220 fake.example ESMTP\r\n" if smtp else
                 b"* OK [CAPABILITY IMAP4rev1 STARTTLS] fake\r\n")
    while True:
        line = peer.recv_line(sock)
        if not line:
            return
        word = line.split()[0 if smtp else 1:][:1]
        word = word[0].upper() if word else b""
        if smtp and word in (b"EHLO", b"HELO"):
            sock.sendall(b"250-fake.example\r\n250 STARTTLS\r\n")
        elif not smtp and word == b"CAPABILITY":
            sock.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" +
                         line.split()[0] + b" OK done\r\n")
        elif word == b"STARTTLS":
            sock.sendall(b"220 2.0.0 go ahead\r\n" if smtp else
                         line.split()[0] + b" OK begin TLS\r\n")
            break
        else:
            return
    half_server_hello(peer, sock)


def to_tls(sock, prog):
    """From connect to a client TLS session with the gateway; then the
    command that makes the gateway need its backend."""
    if not implicit(prog):
        if is_smtp(prog):
            read_reply_line(sock, b"220 ")
            sock.sendall(b"EHLO c.example\r\n")
            read_reply_line(sock, b"250 ")
            sock.sendall(b"STARTTLS\r\n")
            read_reply_line(sock, b"220 ")
        else:
            read_reply_line(sock, b"* OK")
            sock.sendall(b"s STARTTLS\r\n")
            read_reply_line(sock, b"s OK")
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    if is_smtp(prog):
        if implicit(prog):
            read_reply_line(tls, b"220 ")
        tls.sendall(b"EHLO c.example\r\n")
    else:
        tls.sendall(b"c CAPABILITY\r\n")
    return tls


BACKEND_CASES = (
    ("backend accepts and never greets", mute_backend, "starttls",
     "timeout"),
    ("backend never answers the TLS handshake", mute_backend, "tls",
     "timed out"),
    ("backend sends half a ServerHello", half_server_hello, "tls",
     "timed out"),
    ("backend stalls in its ServerHello after STARTTLS",
     starttls_then_half, "starttls", "timed out"),
)

for case, handler, security, reason in BACKEND_CASES:
    for prog in ("mailgate-smtp-starttls", "mailgate-imaps"):
        name = "%s, %s" % (prog, case)
        peer = gw.ScriptedPeer(handler)
        peer.smtp = is_smtp(prog)
        peer.half_sent = None
        g = gw.Gateway(prog, base, settings(
            prog, peer.port, security, connect_timeout=T,
            handshake_timeout=T)).start()
        sock = g.connect()
        tls = to_tls(sock, prog)
        start = time.monotonic()
        got, took = read_to_close(tls, LIMIT + 4)
        tls.close()
        if not t.ok(took is not None and took < LIMIT,
                    "%s: ended within %d s of the client's TLS"
                    % (name, LIMIT)):
            t.diag("ended after %r s" % took)
        else:
            t.note("%s: ended %.2f s after the client's TLS"
                   % (name, took))
        want = b"421 4." if is_smtp(prog) else b"* BYE [UNAVAILABLE]"
        lines = [x for x in got.split(b"\r\n") if x]
        if not t.ok(lines and lines[-1].startswith(want),
                    name + ": the client gets " + want.decode()):
            t.diag("got %r" % got[-300:])
        check_summary(g, name, "111", reason)
        if handler is half_server_hello or handler is starttls_then_half:
            t.ok(peer.half_sent, name + ": the backend did send part of "
                 "its handshake")
        g.stop()
        peer.stop()


# ------------------------------- a client that stops reading after login

TOTAL = 200 * 1024 * 1024       # what the backend offers to send
CHUNK = 256 * 1024
pattern = bytes(range(256)) * (CHUNK // 256)


class Streamer:
    """A plaintext IMAP backend that accepts LOGIN, then answers a FETCH
    with a TOTAL-byte literal, sent as fast as the gateway takes it; it
    notes its progress."""

    def __init__(self):
        self.pushed = 0
        self.last_progress = time.monotonic()
        self.done = False
        self.digest = hashlib.sha256()

    def __call__(self, peer, sock):
        sock.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n")
        while True:
            line = peer.recv_line(sock)
            if not line:
                return
            tag, _, rest = line.partition(b" ")
            verb = rest.split(b" ", 1)[0].strip().upper()
            if verb == b"FETCH":
                break
            if verb == b"CAPABILITY":
                sock.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
            sock.sendall(tag + b" OK done\r\n")
        sock.sendall(b"* 1 FETCH (BODY[] {%d}\r\n" % TOTAL)
        sock.setblocking(False)
        while self.pushed < TOTAL:
            part = pattern[:min(CHUNK, TOTAL - self.pushed)]
            _, w, _ = select.select([], [sock], [], 1)
            if not w:
                if time.monotonic() - self.last_progress > 60:
                    return
                continue
            try:
                n = sock.send(part)
            except BlockingIOError:
                continue
            self.digest.update(part[:n])
            self.pushed += n
            self.last_progress = time.monotonic()
        sock.setblocking(True)
        sock.sendall(b")\r\n" + tag + b" OK FETCH done\r\n")
        self.done = True
        peer.recv_some(sock, 5)


streamer = Streamer()
peer = gw.ScriptedPeer(streamer)
g = gw.Gateway("mailgate-imap-starttls", base, gw.imap_settings(
    certdir, "127.0.0.1", peer.port, "none", allow_plaintext_clients="yes",
    allow_plaintext_backend="yes", hostname="gw.example.test"),
    verbose=1).start()
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
sock.connect(("127.0.0.1", g.port))
read_reply_line(sock, b"* OK")
sock.sendall(b"a LOGIN bob bobpw\r\n")
reply = read_reply_line(sock, b"a ")
t.ok(b"a OK" in reply, "non-reading client: logged in")
sock.sendall(b"s SELECT INBOX\r\n")
read_reply_line(sock, b"s ")
kids = gateway_child(g)
pid = kids[0] if len(kids) == 1 else None
t.ok(pid, "non-reading client: one gateway process to watch")
rss_start = vm_rss_kb(pid) if pid else None
# The client asks for a big message, then reads nothing.  Wait until the
# backend makes no progress for 3 s (it is held back) or has sent it all.
sock.sendall(b"f FETCH 1 BODY[]\r\n")
peak = 0
end = time.monotonic() + 40
while time.monotonic() < end and not streamer.done:
    if pid:
        peak = max(peak, vm_rss_kb(pid) or 0)
    if (streamer.pushed and
            time.monotonic() - streamer.last_progress > 3):
        break
    time.sleep(0.1)
if pid:
    peak = max(peak, vm_rss_kb(pid) or 0)
pushed = streamer.pushed
t.note("non-reading client: backend pushed %.1f MB of %d MB, then was "
       "held back; gateway VmRSS %s kB after login, peak %d kB"
       % (pushed / 1048576.0, TOTAL // 1048576, rss_start, peak))
t.ok(not streamer.done and pushed < TOTAL,
     "non-reading client: the backend is held back before it sent all "
     "%d MB" % (TOTAL // 1048576))
if not t.ok(0 < peak < 20 * 1024,
            "non-reading client: gateway VmRSS stayed under 20 MB"):
    t.diag("peak VmRSS %d kB" % peak)
# Now read it all: nothing lost, nothing changed.
head = b"* 1 FETCH (BODY[] {%d}\r\n" % TOTAL
trailer = b")\r\nf OK FETCH done\r\n"
digest = hashlib.sha256()
got = 0
buf = b""
sock.settimeout(20)
while True:
    try:
        chunk = sock.recv(1 << 20)
    except (socket.timeout, ConnectionError):
        break
    if not chunk:
        break
    if len(buf) < len(head):
        buf += chunk
        if len(buf) < len(head):
            continue
        chunk = buf[len(head):]
        buf = buf[:len(head)]
    digest.update(chunk)
    got += len(chunk)
    if pid:
        peak = max(peak, vm_rss_kb(pid) or 0)
    if got >= TOTAL + len(trailer):
        break
sock.close()
t.is_(buf, head, "non-reading client: the FETCH response starts as sent")
t.is_(got, TOTAL + len(trailer), "non-reading client: then it reads "
      "every byte")
streamer.digest.update(trailer)
t.ok(digest.digest() == streamer.digest.digest(),
     "non-reading client: the bytes are the backend's")
t.note("gateway peak VmRSS over the whole stream: %d kB" % peak)
t.ok(peak < 20 * 1024, "non-reading client: VmRSS under 20 MB while "
     "draining too")
g.stop()
peer.stop()


# ------------------------------------------------------- a flood of errors

def flood(prog, command, refused, max_errors=None):
    more = {"max_errors": max_errors} if max_errors else {}
    limit = max_errors or 10
    name = "%s, refused commands (max_errors %s)" % (
        prog, max_errors or "default")
    g = gw.Gateway(prog, base, settings(prog, ms.free_port(),
                                        **more)).start()
    sock = g.connect()
    read_reply_line(sock, b"220 " if is_smtp(prog) else b"* OK")
    refusals = 0
    closed = False
    tail = b""
    for i in range(limit + 5):
        try:
            sock.sendall(command(i))
        except OSError:
            closed = True
            break
        data = b""
        sock.settimeout(5)
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except (socket.timeout, ConnectionError):
            closed = True
        for line in data.split(b"\r\n"):
            if line.startswith(refused):
                refusals += 1
            elif line:
                tail = line
        if closed:
            break
    if not closed:
        _, took = read_to_close(sock, 2)
        closed = took is not None
    sock.close()
    t.ok(closed, name + ": disconnected")
    t.is_(refusals, limit, name + ": %d refusals before that" % limit)
    t.note("%s: last line %r" % (name, tail))
    check_summary(g, name, "1", "error")
    g.stop()


flood("mailgate-smtp-starttls", lambda i: b"MAIL FROM:<a@b.example>\r\n",
      b"530 ")
flood("mailgate-smtp-starttls", lambda i: b"AUTH PLAIN\r\n", b"530 ",
      max_errors=3)
flood("mailgate-imap-starttls", lambda i: b"b%d SELECT INBOX\r\n" % i,
      b"b")
flood("mailgate-imap-starttls", lambda i: b"l%d LOGIN a b\r\n" % i, b"l",
      max_errors=4)

t.done()
