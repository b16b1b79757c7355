"""A gateway run directly on one accepted connection, and bounded reads.

Run starts one of the programs with an accepted loopback TCP socket as
its stdin and stdout, as inetd does, so that a test can read its exit
status, send it signals and watch its memory.  The readers below take
one SMTP reply, IMAP responses up to a tag, or everything until the
peer closes, each within a time bound.
"""

import itertools
import os
import socket
import subprocess
import time

import gateway as gw
import mailstack

SERIAL = itertools.count(1)


class Run:
    """One gateway process serving one accepted TCP connection on its
    stdin and stdout; the client end is self.sock."""

    def __init__(self, prog, settings, workdir):
        self.prog = prog
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.sock = socket.create_connection(listener.getsockname(),
                                             timeout=10)
        conn, _ = listener.accept()
        listener.close()
        self.log_path = os.path.join(workdir, "%s-%d.log"
                                     % (prog, next(SERIAL)))
        argv = gw.Gateway(prog, workdir, settings).argv()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=conn.fileno(),
                                         stdout=conn.fileno(), stderr=log)
        conn.close()
        self.rc = None
        mailstack._register(self)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        mailstack._unregister(self)

    def finish(self, timeout=15):
        """Wait for the process to end; its exit status (None if it had
        to be killed)."""
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.rc = None
        self.stop()
        return self.rc

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def summaries(self):
        return [gw.parse_fields(line) for line in self.log().splitlines()
                if "event=end " in line]


def read_while(sock, more, timeout):
    """What sock says while more(data) holds, until the peer closes or
    timeout seconds pass, whichever is first."""
    data = b""
    end = time.monotonic() + timeout
    while more(data) and time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except OSError:  # timeouts and ssl.SSLError included
            break
        if not chunk:
            break
        data += chunk
    return data


def smtp_reply(sock, timeout=10):
    """One whole SMTP reply; b"" if the peer closed first."""
    return read_while(sock, lambda d: not d.endswith(b"\n") or
                      d[:-1].rsplit(b"\n", 1)[-1][3:4] == b"-", timeout)


def tagged(sock, tag, timeout=10):
    """IMAP responses up to the one tagged tag (or the end)."""
    return read_while(sock, lambda d: not any(
        line.startswith(tag + b" ") for line in d.split(b"\r\n")[:-1]),
        timeout)


def until_closed(sock, timeout=10):
    """Everything until the peer closes (bounded)."""
    return read_while(sock, lambda d: True, timeout)


def quiet(sock, wait=0.4):
    """Whatever arrives within wait seconds."""
    return read_while(sock, lambda d: True, wait)


def until_closed_count(sock, marker, count, timeout=10):
    """Read until marker was seen count times (or the end)."""
    return read_while(sock, lambda d: d.count(marker) < count, timeout)
