"""The gateways under systemd-socket-activate, and scripted peers.

A Gateway runs one of the four programs behind a loopback listener,
exactly as systemd's Accept=yes hands over a connection (--inetd: the
connection on stdin and stdout), with its log on stderr in a file.
A ScriptedPeer is a loopback server whose behaviour a test writes byte
by byte, for misbehaviour no real mail server produces.
"""

import os
import re
import socket
import subprocess
import threading
import time

import mailstack

TOP = os.path.dirname(mailstack.T_DIR)


class Gateway:
    """One gateway program listening on a free loopback port."""

    def __init__(self, prog, workdir, settings, verbose=2, port=None,
                 inetd=True):
        self.prog = prog
        # inetd: the connection on stdin and stdout (StandardInput=
        # socket); else on fd 3 with LISTEN_FDS=1, as sd_listen_fds(3)
        self.inetd = inetd
        self.port = port or mailstack.free_port()
        self.log_path = os.path.join(workdir, "%s-%d.log" % (prog,
                                                              self.port))
        self.settings = dict(settings)
        self.verbose = verbose
        self.proc = None

    def __repr__(self):
        return "Gateway(%s:%d)" % (self.prog, self.port)

    def argv(self):
        args = [os.path.join(TOP, self.prog), "-e"]
        args += ["-v"] * self.verbose
        for key, value in self.settings.items():
            args += ["-o", "%s=%s" % (key, value)]
        return args

    def start(self):
        log = open(self.log_path, "ab")
        # systemd-socket-activate passes on no environment of its own
        # accord; the sanitizer settings of make check-sanitize must
        # reach the gateway.
        env = []
        for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if name in os.environ:
                env += ["-E", name]
        self.proc = subprocess.Popen(
            ["systemd-socket-activate"] + (["--inetd"] if self.inetd
                                           else []) +
            ["-a", "-l", "127.0.0.1:%d" % self.port] + env + self.argv(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log)
        log.close()
        mailstack._register(self)
        mailstack.wait_until(
            lambda: "Listening on" in self.log(), 10,
            "%r to listen" % self)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        mailstack._unregister(self)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def summaries(self):
        """The summary lines so far, each as a dict of its fields."""
        found = []
        for line in self.log().splitlines():
            if "event=end " in line:
                found.append(parse_fields(line))
        return found

    def wait_summaries(self, count, timeout=10):
        """Wait until count summary lines are there; return them."""
        try:
            mailstack.wait_until(lambda: len(self.summaries()) >= count,
                                 timeout, "summary lines of %r" % self)
        except TimeoutError:
            pass
        return self.summaries()

    def last_summary(self, timeout=10):
        """The newest summary line after one more connection ended."""
        before = len(self.summaries())
        found = self.wait_summaries(before + 1, timeout)
        return found[-1] if found else {}

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port),
                                        timeout=timeout)


FIELD = re.compile(r'(\w+)=("(?:[^"]*)"|\S+)')


def parse_fields(line):
    """key=value fields of a log line; quotes removed."""
    return {k: v.strip('"') for k, v in FIELD.findall(line)}


def smtp_settings(certdir, host, port, security, **more):
    """Settings for an SMTP gateway in front of host:port."""
    s = {"cert": os.path.join(certdir, "gateway.pem"),
         "key": os.path.join(certdir, "gateway-key.pem"),
         "ca": os.path.join(certdir, "ca.pem"),
         "smtp.host": host, "smtp.port": port, "smtp.security": security}
    s.update(more)
    return s


def imap_settings(certdir, host, port, security, **more):
    """Settings for an IMAP gateway in front of host:port."""
    s = smtp_settings(certdir, host, port, security, **more)
    for key in ("smtp.host", "smtp.port", "smtp.security"):
        s["imap" + key[4:]] = s.pop(key)
    return s


class ScriptedPeer:
    """A loopback server that runs handler(sock) for each connection in
    a thread and keeps every byte it received, for assertions."""

    def __init__(self, handler, connections=1):
        self.handler = handler
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.errors = []
        self.thread = threading.Thread(target=self._serve,
                                       args=(connections,), daemon=True)
        self.thread.start()
        mailstack._register(self)

    def _serve(self, connections):
        for _ in range(connections):
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.settimeout(15)
            try:
                self.handler(self, sock)
            except Exception as e:  # reported, not raised in a thread
                self.errors.append(repr(e))
            finally:
                sock.close()

    def recv_line(self, sock):
        """One line from sock, recorded in self.received."""
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1)
            if not chunk:
                break
            data += chunk
        self.received += data
        return data

    def recv_some(self, sock, wait=0.5):
        """Whatever arrives within wait seconds, recorded."""
        sock.settimeout(wait)
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        self.received += data
        return data

    def stop(self):
        # shutdown() wakes a thread blocked in accept(); close() alone
        # does not.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        mailstack._unregister(self)


def smtp_backend(peer, sock):
    """A ScriptedPeer handler: a plaintext SMTP backend that greets,
    answers EHLO with AUTH PLAIN, QUIT with 221 and anything else with
    250."""
    sock.sendall(b"220 fake.example ESMTP\r\n")
    while True:
        line = peer.recv_line(sock)
        if not line:
            return
        verb = line[:4].upper()
        if verb == b"EHLO":
            sock.sendall(b"250-fake.example\r\n250 AUTH PLAIN\r\n")
        elif verb == b"QUIT":
            sock.sendall(b"221 2.0.0 fake bye\r\n")
            return
        else:
            sock.sendall(b"250 2.0.0 ok\r\n")


def read_until(sock, marker, timeout=10):
    """Read from sock until marker appears or the peer closes."""
    sock.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    while marker not in data and time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data
