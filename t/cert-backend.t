#!/usr/bin/python3
"""The backend certificate matrix.

A scripted backend on loopback presents one certificate per case, with
implicit TLS or after its STARTTLS go-ahead, behind mailgate-smtps and
mailgate-imaps.  A certificate that passes must give the client a
working session (its own words reach the backend, SNI carries the
configured name and never an IP literal); one that fails must give the
client 421 or "* BYE [UNAVAILABLE]", a summary with verify=failed,
status=111 and the reason, and the backend nothing after its handshake.

The gateways run in a private mount namespace whose /etc/hosts maps a
few test names to 127.0.0.1, so that wildcard and trailing-dot names
resolve; the host's own /etc/hosts is not touched.
"""

import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway as gw  # noqa: E402
import mailstack as ms  # noqa: E402

t = ms.Tap()
if os.geteuid() != 0:
    t.skip_all("needs root for a private /etc/hosts (unshare -m)")
certdir = ms.certs()
base = ms.scratch_dir()
client_ctx = ms.client_context(certdir)
CLIENT_MARK = b"client.example"
HOSTS = os.path.join(base, "hosts")
with open(HOSTS, "w") as f:
    f.write("127.0.0.1 localhost localhost. mail.example.test "
            "MAIL.Example.TEST "
            "a.b.example.test example.test\n::1 ip6-localhost\n")


# ------------------------------------------------------------ the gateway

class NsGateway(gw.Gateway):
    """A Gateway whose process tree sees HOSTS as /etc/hosts."""

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" /etc/hosts && exec "$@"', HOSTS,
             "systemd-socket-activate", "--inetd", "-a", "-l",
             "127.0.0.1:%d" % self.port] + self.argv(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log)
        log.close()
        ms._register(self)
        ms.wait_until(lambda: "Listening on" in self.log(), 10,
                      "%r to listen" % self)
        return self


# ------------------------------------------------------------ the backend

class Backend:
    """A loopback server that handles one connection at a time with the
    certificate and protocol of the current case, and keeps a record of
    each connection: what came in plaintext, whether the handshake
    completed, what came over TLS, and the SNI name."""

    def __init__(self, family, addr):
        self.listener = socket.socket(family)
        self.listener.bind((addr, 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.case = None
        self.records = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        ms._register(self)

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.listener.close()
        ms._unregister(self)

    def _serve(self):
        while self.running:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = {"plain": b"", "handshake": False, "tls": None,
                   "sni": None, "error": None}
            self.records.append(rec)
            sock.settimeout(10)
            try:
                self._handle(sock, rec)
            except Exception as e:  # recorded, not raised in a thread
                rec["error"] = repr(e)
            finally:
                sock.close()

    def _context(self, rec):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.minimum_version = ssl.TLSVersion.TLSv1_2
        # The weak certificates (RSA-1024, SHA-1) are the point of some
        # cases: the test server must be willing to present them.
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        c.load_cert_chain(os.path.join(certdir, self.case["chain"]),
                          os.path.join(certdir, self.case["key"]))

        def sni(sslobj, name, ctx):
            rec["sni"] = name
        c.sni_callback = sni
        return c

    @staticmethod
    def _line(sock):
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1)
            if not chunk:
                break
            data += chunk
        return data

    def _handle(self, sock, rec):
        proto, mode = self.case["proto"], self.case["mode"]
        if mode == "starttls":
            if proto == "smtp":
                sock.sendall(b"220 backend.test ESMTP\r\n")
                while True:
                    line = self._line(sock)
                    rec["plain"] += line
                    if line.upper().startswith(b"EHLO"):
                        sock.sendall(b"250-backend.test\r\n250 STARTTLS\r\n")
                    elif line.upper() == b"STARTTLS\r\n":
                        sock.sendall(b"220 2.0.0 go ahead\r\n")
                        break
                    else:
                        return
            else:
                sock.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] "
                             b"backend ready\r\n")
                line = self._line(sock)
                rec["plain"] += line
                tag = line.split(b" ")[0]
                if line.upper() != tag.upper() + b" STARTTLS\r\n":
                    return
                sock.sendall(tag + b" OK begin TLS\r\n")
        tls = self._context(rec).wrap_socket(sock, server_side=True)
        rec["handshake"] = True
        rec["tls"] = b""
        if mode == "tls":
            tls.sendall(b"220 backend.test ESMTP\r\n" if proto == "smtp"
                        else b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] "
                        b"backend ready\r\n")
        while True:
            line = self._line(tls)
            rec["tls"] += line
            if not line:
                return
            words = line.rstrip(b"\r\n").split(b" ")
            if proto == "smtp":
                verb = words[0].upper()
                if verb == b"EHLO":
                    tls.sendall(b"250-backend.test\r\n250 AUTH PLAIN\r\n")
                elif verb == b"QUIT":
                    tls.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    tls.sendall(b"250 2.0.0 ok\r\n")
            else:
                tag = words[0]
                verb = words[1].upper() if len(words) > 1 else b""
                if verb == b"CAPABILITY":
                    tls.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" +
                                tag + b" OK done\r\n")
                elif verb == b"LOGOUT":
                    tls.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                    return
                else:
                    tls.sendall(tag + b" OK done\r\n")


# ------------------------------------------------------------- the client

def read_until_closed(sock, timeout=10):
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


def read_smtp_reply(sock, timeout=10):
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = data.split(b"\r\n")
        if len(lines) > 1 and lines[-2][3:4] == b" ":
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


def smtp_client(g):
    """smtps: greeting, EHLO, then QUIT if the EHLO worked.  Returns
    (worked, transcript)."""
    tls = client_ctx.wrap_socket(g.connect(), server_hostname="localhost")
    got = read_smtp_reply(tls)
    tls.sendall(b"EHLO " + CLIENT_MARK + b"\r\n")
    reply = read_smtp_reply(tls)
    got += reply
    if reply.startswith(b"250"):
        tls.sendall(b"QUIT\r\n")
        got += read_until_closed(tls)
        worked = b"221 2.0.0 bye\r\n" in got
    else:
        got += read_until_closed(tls)
        worked = False
    tls.close()
    return worked, got


def smtp_refused(got):
    """Exactly the gateway's greeting, then one 421 reply."""
    lines = got.split(b"\r\n")
    return (len(lines) == 3 and lines[0].startswith(b"220 ") and
            lines[1].startswith(b"421 4.") and lines[2] == b"")


def imap_client(g):
    """imaps: a command with the client's mark right after the
    handshake, then LOGOUT after the greeting."""
    tls = client_ctx.wrap_socket(g.connect(), server_hostname="localhost")
    tls.sendall(b'm1 ID ("name" "' + CLIENT_MARK + b'")\r\n')
    got = gw.read_until(tls, b"\r\n")
    if got.startswith(b"* OK"):
        got += gw.read_until(tls, b"m1 OK")
        tls.sendall(b"z LOGOUT\r\n")
        got += read_until_closed(tls)
        worked = b"m1 OK done\r\n" in got and b"z OK done\r\n" in got
    else:
        got += read_until_closed(tls)
        worked = False
    tls.close()
    return worked, got


def imap_refused(got):
    lines = got.split(b"\r\n")
    return (len(lines) == 2 and lines[0].startswith(b"* BYE [UNAVAILABLE]")
            and lines[1] == b"")


# -------------------------------------------------------------- the cases

NOT_TRUSTED = "certificate not trusted"
MISMATCH = "certificate name mismatch"

# (name, chain file, key file, configured host, None to pass or the
# reason a refusal must give)
CASES = [
    ("good", "backend.pem", "backend-key.pem", "localhost", None),
    ("expired", "expired.pem", "expired-key.pem", "localhost",
     "certificate expired"),
    ("not yet valid", "notyet.pem", "notyet-key.pem", "localhost",
     "certificate not yet valid"),
    ("wrong name", "wrongname.pem", "wrongname-key.pem", "localhost",
     MISMATCH),
    ("CN=localhost, no SAN", "cnonly.pem", "cnonly-key.pem", "localhost",
     "certificate has no subject alternative name"),
    ("self-signed leaf", "selfsigned.pem", "selfsigned-key.pem",
     "localhost", NOT_TRUSTED),
    ("unknown root", "untrusted.pem", "untrusted-key.pem", "localhost",
     NOT_TRUSTED),
    ("intermediate not sent", "chained.pem", "chained-key.pem",
     "localhost", NOT_TRUSTED),
    ("intermediate sent", "chained-full.pem", "chained-key.pem",
     "localhost", None),
    ("SHA-1 signature", "sha1.pem", "sha1-key.pem", "localhost",
     "certificate signature algorithm insecure"),
    ("RSA-1024 key", "rsa1024.pem", "rsa1024-key.pem", "localhost",
     "certificate key too small"),
    ("RSA-2048 key", "rsa2048.pem", "rsa2048-key.pem", "localhost", None),
    ("client-auth-only key purpose", "clientonly.pem",
     "clientonly-key.pem", "localhost",
     "certificate key purpose not server"),
    ("no key purpose extension", "nopurpose.pem", "nopurpose-key.pem",
     "localhost", None),
    ("issuer not a CA", "notca-full.pem", "notca-key.pem", "localhost",
     NOT_TRUSTED),
    ("*.example.test for localhost", "wildcard.pem", "wildcard-key.pem",
     "localhost", MISMATCH),
    ("DNS:localhost for localhost.", "backend.pem", "backend-key.pem",
     "localhost.", None),
    ("wrong name for localhost.", "wrongname.pem", "wrongname-key.pem",
     "localhost.", MISMATCH),
    ("*.example.test for mail.example.test", "wildcard.pem",
     "wildcard-key.pem", "mail.example.test", None),
    ("*.example.test for MAIL.Example.TEST", "wildcard.pem",
     "wildcard-key.pem", "MAIL.Example.TEST", None),
    ("DNS:localhost for mail.example.test", "backend.pem",
     "backend-key.pem", "mail.example.test", MISMATCH),
    ("*.example.test for a.b.example.test", "wildcard.pem",
     "wildcard-key.pem", "a.b.example.test", MISMATCH),
    ("*.example.test for example.test", "wildcard.pem", "wildcard-key.pem",
     "example.test", MISMATCH),
    ("IP SAN for 127.0.0.1", "backend.pem", "backend-key.pem", "127.0.0.1",
     None),
    ("DNS:localhost only for 127.0.0.1", "dnsonly.pem", "dnsonly-key.pem",
     "127.0.0.1", MISMATCH),
    ("CN=localhost only for 127.0.0.1", "cnonly.pem", "cnonly-key.pem",
     "127.0.0.1", MISMATCH),
    ("IP SAN for ::1", "backend.pem", "backend-key.pem", "::1", None),
    ("DNS:localhost only for ::1", "dnsonly.pem", "dnsonly-key.pem", "::1",
     MISMATCH),
]

RUNS = [("smtp", "tls"), ("smtp", "starttls"), ("imap", "tls"),
        ("imap", "starttls")]

backend4 = Backend(socket.AF_INET, "127.0.0.1")
backend6 = Backend(socket.AF_INET6, "::1")


def run_case(proto, mode, g, case):
    name, chain, key, host, reason = case
    label = "%s %s, %s" % (proto, mode, name)
    backend = backend6 if ":" in host else backend4
    backend.case = {"proto": proto, "mode": mode, "chain": chain,
                    "key": key}
    nrec = len(backend.records)
    before = len(g.summaries())
    worked, got = (smtp_client if proto == "smtp" else imap_client)(g)
    found = g.wait_summaries(before + 1)
    s = found[before] if len(found) > before else {}
    try:
        ms.wait_until(lambda: len(backend.records) > nrec, 5,
                      "the backend to see the gateway")
    except TimeoutError:
        pass
    rec = backend.records[-1] if len(backend.records) > nrec else None
    detail = "got %r\nsummary %r\nbackend %r" % (got[:300], s, rec)
    rec = rec or {}
    # What the backend may hear in plaintext: the gateway's own words.
    own = {("smtp", "tls"): b"",
           ("smtp", "starttls"): b"EHLO gw.example.test\r\nSTARTTLS\r\n",
           ("imap", "tls"): b""}.get((proto, mode))

    if reason is None:
        good = t.ok(worked, label + ": the client's session works")
        good &= t.ok(s.get("verify") == "ok" and s.get("status") == "0",
                   label + ": verify=ok status=0")
        good &= t.ok(CLIENT_MARK in (rec.get("tls") or b""),
                   label + ": the client's words reach the backend")
        sni = None if ":" in host or host[0].isdigit() else host.rstrip(".")
        good &= t.ok(rec.get("sni") == sni,
                   label + ": SNI is %s" % (sni or "absent"))
    else:
        refused = smtp_refused(got) if proto == "smtp" else \
            imap_refused(got)
        good = t.ok(refused, label + ": the client gets " +
                  ("one 421 reply" if proto == "smtp" else
                   "* BYE [UNAVAILABLE]"))
        good &= t.ok(s.get("verify") == "failed", label + ": verify=failed")
        good &= t.ok(s.get("status") == "111", label + ": status=111")
        good &= t.ok(reason in s.get("reason", ""),
                   label + ": reason says " + reason)
        plain = rec.get("plain")
        good &= t.ok(rec and not rec.get("handshake") and
                   rec.get("tls") is None and
                   (plain == own if own is not None else
                    plain.endswith(b" STARTTLS\r\n") and
                    plain.count(b"\n") == 1),
                   label + ": the backend got nothing after the handshake")
    if not good:
        t.diag(detail)
    else:
        t.note("%s: reason=%r" % (label, s.get("reason")))


start = time.monotonic()
for proto, mode in RUNS:
    prog = "mailgate-smtps" if proto == "smtp" else "mailgate-imaps"
    settings = gw.smtp_settings if proto == "smtp" else gw.imap_settings
    hosts = []
    for case in CASES:
        if case[3] not in hosts:
            hosts.append(case[3])
    for host in hosts:
        backend = backend6 if ":" in host else backend4
        g = NsGateway(prog, base, settings(
            certdir, host, backend.port, mode,
            hostname="gw.example.test")).start()
        for case in CASES:
            if case[3] == host:
                run_case(proto, mode, g, case)
        g.stop()
t.note("matrix took %.1f s" % (time.monotonic() - start))

backend4.stop()
backend6.stop()
t.done()
