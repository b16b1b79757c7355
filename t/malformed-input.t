#!/usr/bin/python3
"""Malformed and awkward input reaches no one and breaks nothing.

On every program, before and after TLS: lines over 32 KiB get 500 5.5.2
or * BYE and the connection ends; 10 MB without a newline, before TLS
and through the relay, leaves the gateway's memory flat; NUL bytes, bare
CR and bare LF neither crash it nor run a second command, and inside
the relay they pass byte for byte (no line-ending rewriting, no dot
handling); IMAP literal counts that overflow, are negative or not
numbers end the connection with * BYE and reach no backend, and no "+"
is ever offered before TLS; commands sent one byte at a time, 100
commands in one write or TLS record, and backend replies written one
byte per record all come out whole and in order.

Each gateway is started once per connection with the accepted TCP
socket as stdin and stdout, as inetd does, so that its exit status and
its memory (/proc/PID/status) can be read; backends are scripted.
"""

import os
import re
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import direct  # noqa: E402
from direct import (  # noqa: E402
    quiet, smtp_reply, tagged, until_closed, until_closed_count)
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
certdir = ms.certs()
base = ms.scratch_dir()
ctx = ms.client_context(certdir)
backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
backend_ctx.load_cert_chain(os.path.join(certdir, "backend.pem"),
                            os.path.join(certdir, "backend-key.pem"))
MEMORY_LIMIT_KB = 20 * 1024
# AddressSanitizer (make check-sanitize) keeps freed memory in its
# quarantine and shadow: the bound then only guards against runaway
# growth.
if "ASAN_OPTIONS" in os.environ:
    MEMORY_LIMIT_KB = 160 * 1024

# ------------------------------------------------------------ processes

def Run(prog, settings):
    return direct.Run(prog, settings, base)


def one_summary(run, name):
    found = run.summaries()
    t.is_(len(found), 1, name + ": exactly one summary line")
    return found[0] if found else {}


# ----------------------------------------------------- scripted backends

class Reader:
    """Buffered reading for a scripted backend; what it reads as lines
    or literals is kept in peer.received."""

    def __init__(self, peer, sock):
        self.peer, self.sock, self.buf = peer, sock, b""

    def _more(self):
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return chunk

    def line(self):
        while b"\n" not in self.buf:
            if not self._more():
                break
        i = self.buf.find(b"\n")
        out, self.buf = (self.buf, b"") if i < 0 else \
            (self.buf[:i + 1], self.buf[i + 1:])
        self.peer.received += out
        return out

    def exact(self, n):
        while len(self.buf) < n:
            if not self._more():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        self.peer.received += out
        return out

    def until(self, marker):
        """Bytes up to and including marker, not kept in received."""
        data = bytearray(self.buf)
        self.buf = b""
        while not data.endswith(marker):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def drain(self):
        """Read and count bytes until the end, keeping none; the count
        so far is in peer.drained."""
        self.peer.drained = len(self.buf)
        self.buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return self.peer.drained
            self.peer.drained += len(chunk)


def send_bytewise(sock, data):
    """One byte per send: one TLS record (or TCP segment) each."""
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(0.001)


def nodelay(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


SMTP_EHLO = b"250-fake.example\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n" \
    b"250 8BITMIME\r\n"
SMTP_ANSWERS = {
    b"MAIL": b"250 2.1.0 ok\r\n", b"RCPT": b"250 2.1.5 ok\r\n",
    b"NOOP": b"250 2.0.0 ok\r\n", b"RSET": b"250 2.0.0 ok\r\n",
    b"QUIT": b"221 2.0.0 bye\r\n", b"AUTH": b"235 2.7.0 ok\r\n",
}


def smtp_backend(starttls=False, bytewise=False, drain=0):
    """An SMTP backend: implicit TLS, or STARTTLS with its plaintext
    replies; bytewise writes its EHLO replies one byte per send.  A
    message is kept whole in peer.messages; with drain, DATA reads and
    counts bytes until the end instead."""
    def handler(peer, sock):
        peer.connections += 1
        nodelay(sock)
        say = send_bytewise if bytewise else (lambda s, d: s.sendall(d))
        if starttls:
            sock.sendall(b"220 fake.example ESMTP\r\n")
            r = Reader(peer, sock)
            while True:
                line = r.line().upper()
                if line.startswith(b"EHLO"):
                    say(sock, b"250-fake.example\r\n250 STARTTLS\r\n")
                elif line == b"STARTTLS\r\n":
                    sock.sendall(b"220 2.0.0 go ahead\r\n")
                    break
                else:
                    return
            tls = backend_ctx.wrap_socket(sock, server_side=True)
        else:
            tls = backend_ctx.wrap_socket(sock, server_side=True)
            tls.sendall(b"220 fake.example ESMTP\r\n")
        mark = len(peer.received)
        r = Reader(peer, tls)
        try:
            while True:
                line = r.line()
                if not line:
                    break
                verb = line[:4].upper()
                if verb == b"EHLO":
                    say(tls, SMTP_EHLO)
                elif verb == b"DATA":
                    tls.sendall(b"354 go ahead\r\n")
                    if drain:
                        r.drain()
                        continue
                    peer.messages.append(r.until(b"\r\n.\r\n"))
                    tls.sendall(b"250 2.0.0 queued\r\n")
                else:
                    tls.sendall(SMTP_ANSWERS.get(verb,
                                                 b"500 5.5.2 what\r\n"))
                if verb == b"QUIT":
                    break
        finally:
            peer.after_tls = peer.received[mark:]
    return handler


IMAP_GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN LITERAL+] ready\r\n"


def imap_backend(bytewise=False, drain=0, stall=False):
    """An IMAP backend over implicit TLS that takes literals (up to
    1 MB; a larger synchronising one gets NO), logs anyone in, and with
    drain reads and counts raw bytes after the login until the end
    (with stall only once peer.release is set)."""
    def handler(peer, sock):
        peer.connections += 1
        nodelay(sock)
        say = send_bytewise if bytewise else (lambda s, d: s.sendall(d))
        tls = backend_ctx.wrap_socket(sock, server_side=True)
        say(tls, IMAP_GREETING)
        r = Reader(peer, tls)
        while True:
            line = r.line()
            if not line:
                return
            tag, _, rest = line.partition(b" ")
            verb = rest.split(b" ")[0].strip().upper()
            refused = False
            while True:
                m = re.search(rb"\{(\d+)(\+?)\}\r?\n$", line)
                if not m:
                    break
                if int(m.group(1)) > 1000000:
                    tls.sendall(tag + b" NO literal too big\r\n")
                    refused = True
                    break
                if not m.group(2):
                    tls.sendall(b"+ go on\r\n")
                r.exact(int(m.group(1)))
                line = r.line()
            if refused:
                continue
            if verb == b"CAPABILITY":
                say(tls, b"* CAPABILITY IMAP4rev1 AUTH=PLAIN LITERAL+\r\n")
            if verb == b"LOGOUT":
                tls.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return
            tls.sendall(tag + b" OK done\r\n")
            if verb == b"LOGIN" and drain:
                if stall:
                    peer.release.wait(20)
                r.drain()
                return
    return handler


def peer_for(handler):
    peer = gw.ScriptedPeer(handler)
    peer.connections = 0
    peer.after_tls = None
    peer.messages = []
    peer.drained = 0
    peer.release = threading.Event()
    return peer


def end_peer(peer):
    """Stop a peer; a thread still in accept() is woken first."""
    if peer.connections == 0:
        try:
            socket.create_connection(("127.0.0.1", peer.port),
                                     timeout=2).close()
        except OSError:
            pass
    peer.thread.join(10)
    peer.stop()


def smtp_settings(port, **more):
    more.setdefault("hostname", "gw.example.test")
    return gw.smtp_settings(certdir, "localhost", port, "tls", **more)


def imap_settings(port, **more):
    more.setdefault("hostname", "gw.example.test")
    return gw.imap_settings(certdir, "localhost", port, "tls", **more)


def client_tls(run):
    """The client's TLS session with the gateway: on 587 and 143 after
    the greeting and STARTTLS, on 465 and 993 at once.  The SMTP
    greeting of 465 is left unread; IMAP greetings before TLS are read."""
    sock = run.sock
    nodelay(sock)
    if run.prog == "mailgate-smtp-starttls":
        smtp_reply(sock)
        sock.sendall(b"STARTTLS\r\n")
        smtp_reply(sock)
    elif run.prog == "mailgate-imap-starttls":
        tagged(sock, b"*")
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
    return ctx.wrap_socket(sock, server_hostname="localhost")


def smtp_in(run):
    """TLS and the gateway's greeting inside it (465) ready for EHLO."""
    tls = client_tls(run)
    if run.prog == "mailgate-smtps":
        smtp_reply(tls)
    return tls


def imap_in(run):
    tls = client_tls(run)
    if run.prog == "mailgate-imaps":
        tagged(tls, b"*")
    return tls


class MemWatch(threading.Thread):
    """Samples the peak resident size (VmHWM, kB) of a process."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, False
        self.start()

    def run(self):
        while not self.done:
            try:
                with open("/proc/%d/status" % self.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak = max(self.peak,
                                            int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.005)

    def finish(self):
        self.done = True
        self.join(2)
        return self.peak


SMTP_PROGS = ("mailgate-smtp-starttls", "mailgate-smtps")
IMAP_PROGS = ("mailgate-imap-starttls", "mailgate-imaps")

# ==================================================== over-long lines

def check_end(run, name, rc, reason):
    t.is_(run.finish(), rc, "%s: exit status %d" % (name, rc))
    s = one_summary(run, name)
    t.is_(s.get("status"), str(rc), "%s: summary status %d" % (name, rc))
    t.ok(reason in s.get("reason", ""), "%s: reason says %s"
         % (name, reason)) or t.diag(s.get("reason"))
    return s


LONG = b"A" * 32768        # 32 KiB, no line end: one byte past the limit
for prog in SMTP_PROGS + IMAP_PROGS:
    smtp = prog in SMTP_PROGS
    for after_tls in ((False, True) if prog.endswith("starttls") else
                      (True,)):
        name = "%s, line of 32 KiB %s TLS" % (prog[9:], "after" if
                                              after_tls else "before")
        peer = peer_for(smtp_backend() if smtp else imap_backend())
        run = Run(prog, (smtp_settings if smtp else imap_settings)(
            peer.port))
        if after_tls:
            sock = smtp_in(run) if smtp else imap_in(run)
        else:
            sock = run.sock
            tagged(sock, b"*") if not smtp else smtp_reply(sock)
        sock.sendall(LONG)
        seen = until_closed(sock)
        want = b"500 5.5.2 " if smtp else b"* BYE "
        t.ok(seen.startswith(want) and seen.count(b"\r\n") == 1,
             name + ": one %r and the end" % want.strip()) \
            or t.diag(seen[:200])
        check_end(run, name, 1, "line too long")
        end_peer(peer)
        t.ok(b"AAAA" not in peer.received, name + ": none of it reached "
             "the backend")


# ============================== memory stays flat: 10 MB, no line end

TEN_MB = 10 * 1024 * 1024
CHUNK = b"x" * 65536


def pour(sock, total, seconds):
    """Send up to total bytes in 64 KiB writes for at most seconds;
    returns how many went out before the gateway closed or stalled."""
    sent = 0
    end = time.monotonic() + seconds
    sock.settimeout(0.2)
    while sent < total and time.monotonic() < end:
        try:
            sent += sock.send(CHUNK)
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            break
    return sent


def memory_case(name, prog, handler, prepare, expect_all, rc,
                stalled=False):
    peer = peer_for(handler)
    run = Run(prog, (smtp_settings if prog in SMTP_PROGS else
                     imap_settings)(peer.port))
    watch = MemWatch(run.proc.pid)
    sock = prepare(run)
    time.sleep(0.05)
    t.ok(watch.peak > 1000, name + ": the gateway's memory is being "
         "sampled (%d kB)" % watch.peak)
    if stalled:
        sent = pour(sock, 8 * TEN_MB, 3)
        t.ok(sent < 8 * TEN_MB, name + ": backpressure: the client could "
             "send only %d bytes" % sent)
        peak = watch.peak
        sock.close()
        peer.release.set()
        ms.wait_until(lambda: not peer.thread.is_alive(), 20, "backend")
        t.is_(peer.drained, sent, name + ": then the backend got them all")
        t.is_(run.finish(), rc, name + ": exit status %d" % rc)
        peak = max(peak, watch.finish())
        t.ok(0 < peak < MEMORY_LIMIT_KB, name + ": peak resident size "
             "%d kB stays under %d kB" % (peak, MEMORY_LIMIT_KB))
        end_peer(peer)
        return
    sent = pour(sock, TEN_MB, 20)
    if expect_all:
        t.is_(sent, TEN_MB, name + ": all 10 MB went through")
        ms.wait_until(lambda: peer.drained >= TEN_MB or
                      not peer.thread.is_alive(), 20, "the backend")
        t.is_(peer.drained, TEN_MB, name + ": the backend got all 10 MB")
    else:
        t.ok(sent < TEN_MB, name + ": the gateway stopped taking bytes "
             "(%d sent)" % sent)
    peak = watch.peak
    sock.close()
    t.is_(run.finish(), rc, name + ": exit status %d" % rc)
    peak = max(peak, watch.finish())
    t.ok(0 < peak < MEMORY_LIMIT_KB, name + ": peak resident size %d kB "
         "stays under %d kB" % (peak, MEMORY_LIMIT_KB))
    end_peer(peer)


def smtp_plain(run):
    smtp_reply(run.sock)
    return run.sock


def imap_plain(run):
    tagged(run.sock, b"*")
    return run.sock


def smtp_data(run):
    tls = smtp_in(run)
    for line in (b"EHLO client.example\r\n", b"MAIL FROM:<a@example.test>"
                 b"\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n"):
        tls.sendall(line)
        smtp_reply(tls)
    return tls


def imap_logged_in(run):
    tls = imap_in(run)
    tls.sendall(b"a LOGIN user pw\r\n")
    tagged(tls, b"a")
    return tls


memory_case("587 before TLS", "mailgate-smtp-starttls", smtp_backend(),
            smtp_plain, False, 1)
memory_case("143 before TLS", "mailgate-imap-starttls", imap_backend(),
            imap_plain, False, 1)
memory_case("465 before the relay", "mailgate-smtps", smtp_backend(),
            smtp_in, False, 1)
memory_case("993 before login", "mailgate-imaps", imap_backend(),
            imap_in, False, 1)
memory_case("587 relay, inside DATA", "mailgate-smtp-starttls",
            smtp_backend(drain=TEN_MB), smtp_data, True, 0)
memory_case("465 relay, inside DATA", "mailgate-smtps",
            smtp_backend(drain=TEN_MB), smtp_data, True, 0)
memory_case("143 relay after login", "mailgate-imap-starttls",
            imap_backend(drain=TEN_MB), imap_logged_in, True, 0)
memory_case("993 relay after login", "mailgate-imaps",
            imap_backend(drain=TEN_MB), imap_logged_in, True, 0)
memory_case("993 relay, backend not reading", "mailgate-imaps",
            imap_backend(drain=10 * TEN_MB, stall=True), imap_logged_in,
            False, 0, stalled=True)


# ============================================== NUL, bare CR, bare LF

def smtp_exchange(sock, line):
    sock.sendall(line)
    return smtp_reply(sock)


for prog in SMTP_PROGS:
    name = prog[9:] + " before the relay"
    peer = peer_for(smtp_backend())
    run = Run(prog, smtp_settings(peer.port))
    if prog == "mailgate-smtp-starttls":
        sock = run.sock
        smtp_reply(sock)
        reply = smtp_exchange(sock, b"NO\0OP\r\n")
        t.ok(reply[:1] == b"5" and reply.count(b"\r\n") == 1,
             "587 before TLS: NO\\0OP: one 5xx reply") or t.diag(reply)
        reply = smtp_exchange(sock, b"NOOP\rQUIT\r\n")
        t.is_(reply.count(b"\r\n"), 1, "587 before TLS: NOOP<CR>QUIT: "
              "one reply, the QUIT behind the bare CR is not run")
        t.ok(not reply.startswith(b"221"), "587 before TLS: no 221")
        sock.sendall(b"NOOP\nNOOP\n")
        reply = smtp_reply(sock) + quiet(sock, 0.3)
        t.ok(re.fullmatch(rb"(\d{3} [^\r\n]*\r\n){1,2}", reply) and
             not reply.startswith(b"221"), "587 before TLS: bare LF lines "
             "get whole replies") or t.diag(reply)
        t.ok(smtp_exchange(sock, b"NOOP\r\n").startswith(b"250"),
             "587 before TLS: the session goes on")
        smtp_exchange(sock, b"STARTTLS\r\n")
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    else:
        sock = smtp_in(run)
    reply = smtp_exchange(sock, b"EHLO client.example\n")
    t.ok(reply.startswith(b"250-fake.example"), name + ": EHLO with a bare "
         "LF reaches the backend") or t.diag(reply)
    reply = smtp_exchange(sock, b"NOOP\0\r\n")
    t.ok(re.fullmatch(rb"\d{3} [^\r\n]*\r\n", reply), name + ": NOOP\\0: "
         "one reply") or t.diag(reply)
    reply = smtp_exchange(sock, b"MAIL FROM:<a@example.test>\r\n")
    smtp_exchange(sock, b"RCPT TO:<b@example.test>\r\n")
    smtp_exchange(sock, b"DATA\r\n")
    body = (b"Subject: x\r\n\r\nNUL \0 here\r\nbare LF\n.\nMAIL FROM:"
            b"<evil@example.test>\nbare CR\r.\rend\r\n.\r\n")
    reply = smtp_exchange(sock, body)
    t.is_(reply, b"250 2.0.0 queued\r\n", name + ": DATA with NUL, bare "
          "CR and bare LF: one reply, the backend's")
    t.is_(quiet(sock, 0.3), b"", name + ": nothing else (no smuggled MAIL)")
    t.ok(smtp_exchange(sock, b"QUIT\r\n").startswith(b"221"), name +
         ": QUIT: 221")
    sock.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    one_summary(run, name)
    end_peer(peer)
    t.is_(peer.messages, [body], name + ": the message reached the "
          "backend byte for byte")
    t.ok(b"EHLO client.example\n" in peer.after_tls and
         b"NOOP\0\r\n" in peer.after_tls,
         name + ": login-phase lines reached the backend unchanged") \
        or t.diag(peer.after_tls)

for prog in IMAP_PROGS:
    name = prog[9:]
    peer = peer_for(imap_backend())
    run = Run(prog, imap_settings(peer.port))
    if prog == "mailgate-imap-starttls":
        sock = run.sock
        tagged(sock, b"*")
        sock.sendall(b"a NO\0OP\r\n\0 NOOP\r\nb NOOP\rc LOGOUT\r\n")
        got = tagged(sock, b"b")
        t.ok(got.startswith(b"a BAD") and b"* BAD" in got,
             "143 before TLS: NUL in a verb and as a tag: BAD") \
            or t.diag(got)
        t.ok(re.search(rb"\r\nb (OK|BAD)", got) and b"BYE" not in got,
             "143 before TLS: b NOOP<CR>c LOGOUT is one command; "
             "the LOGOUT is not run") or t.diag(got)
        sock.sendall(b"d NOOP\ne NOOP\n")
        got = tagged(sock, b"e")
        t.ok(b"d OK" in got and b"e OK" in got, "143 before TLS: bare LF "
             "lines answered") or t.diag(got)
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    else:
        sock = imap_in(run)
    sock.sendall(b"f NOOP\0\r\n")
    t.ok(tagged(sock, b"f").startswith(b"f OK"), name + ": f NOOP\\0 goes "
         "to the backend and is answered")
    sock.sendall(b"g NOOP\rh LOGOUT\r\n")
    got = tagged(sock, b"g")
    t.ok(got.startswith(b"g OK") and b"BYE" not in got + quiet(sock, 0.3),
         name + ": g NOOP<CR>h LOGOUT is one command") or t.diag(got)
    sock.sendall(b"i NOOP\n")
    t.ok(tagged(sock, b"i").startswith(b"i OK"), name + ": bare LF "
         "command answered")
    sock.sendall(b"j LOGOUT\r\n")
    tagged(sock, b"j")
    sock.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    one_summary(run, name)
    end_peer(peer)
    t.ok(b"f NOOP\0\r\ng NOOP\rh LOGOUT\r\ni NOOP\nj LOGOUT\r\n"
         in peer.received, name + ": the lines reached the backend "
         "unchanged") or t.diag(peer.received)


# ============================================ IMAP literal counts

BAD_COUNTS = [b"{4294967296}", b"{18446744073709551616}",
              b"{99999999999999999999+}", b"{-1}", b"{1a}", b"{}",
              b"{4294967296+}"]
for prog in IMAP_PROGS:
    for after_tls in ((False, True) if prog.endswith("starttls") else
                      (True,)):
        where = "%s %s TLS" % (prog[9:], "after" if after_tls else
                               "before")
        for count in BAD_COUNTS + [b"{4294967295}", b"{4294967295+}"]:
            name = "%s, LOGIN %s" % (where, count.decode())
            peer = peer_for(imap_backend())
            run = Run(prog, imap_settings(peer.port))
            if after_tls:
                sock = imap_in(run)
            else:
                sock = run.sock
                tagged(sock, b"*")
            sock.sendall(b"a LOGIN " + count + b"\r\n")
            got = tagged(sock, b"a", 5) + quiet(sock, 0.3)
            t.ok(not re.search(rb"(^|\n)\+", got), name +
                 ": no continuation request") or t.diag(got)
            if count in BAD_COUNTS or (count == b"{4294967295+}" and
                                       not after_tls):
                t.ok(re.fullmatch(rb"\* BYE [^\r\n]*\r\n", got),
                     name + ": * BYE and the end") or t.diag(got)
                t.is_(run.finish(), 1, name + ": exit status 1")
                one_summary(run, name)
            elif count == b"{4294967295+}":
                # The literal goes to the backend as the client sends
                # it; a client that stops inside it ends the session.
                sock.sendall(b"xyz")
                sock.close()
                t.is_(run.finish(), 1, name + ": a client closing inside "
                      "the literal: exit status 1")
                one_summary(run, name)
            else:
                want = b"a NO " if after_tls else b"a NO [PRIVACYREQUIRED]"
                t.ok(got.startswith(want), name + ": %r" % want) \
                    or t.diag(got)
                sock.sendall(b"b LOGOUT\r\n")
                tagged(sock, b"b")
                sock.close()
                t.is_(run.finish(), 0, name + ": the session goes on to a "
                      "LOGOUT, exit status 0")
            end_peer(peer)
            reached = b"LOGIN" in peer.received
            if count == b"{4294967295}" and after_tls or \
                    count == b"{4294967295+}" and after_tls:
                t.ok(reached, name + ": the backend decides")
            else:
                t.ok(not reached, name + ": nothing reached the backend")


# ============================= one byte at a time, and 100 in one write

for prog in SMTP_PROGS:
    name = prog[9:] + ", commands one byte per write"
    peer = peer_for(smtp_backend())
    run = Run(prog, smtp_settings(peer.port))
    sock = run.sock
    nodelay(sock)
    if prog == "mailgate-smtp-starttls":
        smtp_reply(sock)
        send_bytewise(sock, b"EHLO client.example\r\n")
        t.ok(smtp_reply(sock).startswith(b"250-"), name + ": EHLO before "
             "TLS")
        send_bytewise(sock, b"STARTTLS\r\n")
        t.ok(smtp_reply(sock).startswith(b"220 "), name + ": STARTTLS")
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
    else:
        tls = smtp_in(run)
    send_bytewise(tls, b"EHLO client.example\r\n")
    t.ok(smtp_reply(tls).startswith(b"250-fake.example"), name +
         ": EHLO inside TLS, one record per byte")
    send_bytewise(tls, b"NOOP\r\n")
    t.ok(smtp_reply(tls).startswith(b"250 "), name + ": NOOP")
    send_bytewise(tls, b"QUIT\r\n")
    t.ok(smtp_reply(tls).startswith(b"221 "), name + ": QUIT")
    tls.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    end_peer(peer)
    t.is_(peer.after_tls, b"EHLO client.example\r\nNOOP\r\nQUIT\r\n",
          name + ": the backend got the commands whole")

for prog in IMAP_PROGS:
    name = prog[9:] + ", commands one byte per write"
    peer = peer_for(imap_backend())
    run = Run(prog, imap_settings(peer.port))
    sock = run.sock
    nodelay(sock)
    if prog == "mailgate-imap-starttls":
        tagged(sock, b"*")
        send_bytewise(sock, b"a CAPABILITY\r\n")
        t.ok(b"a OK" in tagged(sock, b"a"), name + ": before TLS")
        send_bytewise(sock, b"s STARTTLS\r\n")
        tagged(sock, b"s")
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
    else:
        tls = imap_in(run)
    send_bytewise(tls, b"b CAPABILITY\r\n")
    got = tagged(tls, b"b")
    t.ok(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN" in got and b"b OK" in got,
         name + ": CAPABILITY inside TLS, one record per byte") \
        or t.diag(got)
    send_bytewise(tls, b"c LOGIN {4}\r\n")
    t.ok(tagged(tls, b"+").startswith(b"+ "), name + ": literal invited")
    send_bytewise(tls, b"user {2+}\r\npw\r\n")
    t.ok(tagged(tls, b"c").startswith(b"c OK"), name + ": LOGIN with "
         "literals sent byte by byte")
    send_bytewise(tls, b"d LOGOUT\r\n")
    t.ok(b"d OK" in tagged(tls, b"d"), name + ": LOGOUT")
    tls.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    end_peer(peer)
    t.is_(peer.received, b"b CAPABILITY\r\nc LOGIN {4}\r\nuser {2+}\r\n"
          b"pw\r\nd LOGOUT\r\n", name + ": the backend got them whole")

for prog in SMTP_PROGS:
    name = prog[9:] + ", 100 NOOPs in one write"
    peer = peer_for(smtp_backend())
    run = Run(prog, smtp_settings(peer.port))
    if prog == "mailgate-smtp-starttls":
        sock = run.sock
        smtp_reply(sock)
        sock.sendall(b"NOOP\r\n" * 100)
        got = until_closed_count(sock, b"\r\n", 100)
        t.is_(got.count(b"250 "), 100, name + " before TLS: 100 replies")
        sock.sendall(b"STARTTLS\r\n")
        smtp_reply(sock)
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
    else:
        tls = smtp_in(run)
    tls.sendall(b"NOOP\r\n" * 100)   # one TLS record
    got = until_closed_count(tls, b"\r\n", 100)
    t.is_(got, b"250 2.0.0 ok\r\n" * 100, name + " inside TLS: 100 "
          "replies from the backend, in order")
    tls.sendall(b"QUIT\r\n")
    smtp_reply(tls)
    tls.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    end_peer(peer)
    t.is_(peer.after_tls, b"NOOP\r\n" * 100 + b"QUIT\r\n",
          name + ": the backend got each NOOP once")

for prog in IMAP_PROGS:
    name = prog[9:] + ", 100 NOOPs in one write"
    peer = peer_for(imap_backend())
    run = Run(prog, imap_settings(peer.port))
    cmds = b"".join(b"n%d NOOP\r\n" % i for i in range(100))
    answers = b"".join(b"n%d OK done\r\n" % i for i in range(100))
    if prog == "mailgate-imap-starttls":
        sock = run.sock
        tagged(sock, b"*")
        sock.sendall(cmds)
        got = tagged(sock, b"n99")
        t.ok(re.fullmatch(b"".join(rb"n%d OK [^\r\n]*\r\n" % i
                                   for i in range(100)), got),
             name + " before TLS: 100 answers in order") or t.diag(got)
        sock.sendall(b"s STARTTLS\r\n")
        tagged(sock, b"s")
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
    else:
        tls = imap_in(run)
    tls.sendall(cmds)
    got = tagged(tls, b"n99")
    t.is_(got, answers, name + " inside TLS: 100 answers from the backend, "
          "in order")
    tls.sendall(b"z LOGOUT\r\n")
    tagged(tls, b"z")
    tls.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    end_peer(peer)
    t.is_(peer.received, cmds + b"z LOGOUT\r\n", name + ": the backend "
          "got each NOOP once")


# ==================== backend replies one byte per record (or segment)

for prog in SMTP_PROGS:
    for starttls in (False, True):
        name = "%s, backend %s writes its EHLO replies a byte at a time" % (
            prog[9:], "starttls" if starttls else "tls")
        peer = peer_for(smtp_backend(starttls=starttls, bytewise=True))
        settings = smtp_settings(peer.port)
        if starttls:
            settings["smtp.security"] = "starttls"
        run = Run(prog, settings)
        tls = smtp_in(run)
        tls.sendall(b"EHLO client.example\r\n")
        got = smtp_reply(tls)
        t.is_(got, b"250-fake.example\r\n250-PIPELINING\r\n250-AUTH PLAIN"
              b"\r\n250 8BITMIME\r\n", name + ": the client gets it whole")
        tls.sendall(b"QUIT\r\n")
        smtp_reply(tls)
        tls.close()
        t.is_(run.finish(), 0, name + ": exit status 0")
        end_peer(peer)

for prog in IMAP_PROGS:
    name = prog[9:] + ", backend writes greeting and CAPABILITY a byte " \
        "at a time"
    peer = peer_for(imap_backend(bytewise=True))
    run = Run(prog, imap_settings(peer.port))
    tls = client_tls(run)
    if prog == "mailgate-imaps":
        greeting = tagged(tls, b"*")
        t.ok(greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN "
                                 b"LITERAL+]"), name + ": greeting whole") \
            or t.diag(greeting)
    tls.sendall(b"a CAPABILITY\r\n")
    got = tagged(tls, b"a")
    t.is_(got, b"* CAPABILITY IMAP4rev1 AUTH=PLAIN LITERAL+\r\na OK done"
          b"\r\n", name + ": CAPABILITY whole")
    tls.sendall(b"b LOGOUT\r\n")
    tagged(tls, b"b")
    tls.close()
    t.is_(run.finish(), 0, name + ": exit status 0")
    end_peer(peer)

t.done()
