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
import ssl
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


def smtp_reply(sock, timeout=10):
    """One whole SMTP reply; b"" if the peer closed first."""
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if data.endswith(b"\n") and \
                data[:-1].rsplit(b"\n", 1)[-1][3:4] != b"-":
            return data
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (OSError, ssl.SSLError):
            chunk = b""
        if not chunk:
            break
        data += chunk
    return data


def tagged(sock, tag, timeout=10):
    """IMAP responses up to the one tagged tag (or the end)."""
    data = b""
    end = time.monotonic() + timeout
    while not any(line.startswith(tag + b" ")
                  for line in data.split(b"\r\n")[:-1]):
        if time.monotonic() > end:
            break
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (OSError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def until_closed(sock, timeout=10):
    """Everything until the peer closes (bounded)."""
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (OSError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def quiet(sock, wait=0.4):
    """Whatever arrives within wait seconds."""
    data = b""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLError):
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def until_closed_count(sock, marker, count, timeout=10):
    """Read until marker was seen count times (or the end)."""
    data = b""
    end = time.monotonic() + timeout
    while data.count(marker) < count and time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (OSError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data
