#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""make bench: mailgate against its peers, on loopback, side by side.

Starts a private Dovecot and Postfix (t/lib/mailstack.py), then puts in
front of them, each on its own loopback port:

  mailgate   the four programs, run per connection by an accept loop
             in this script that execs one process per connection with
             the socket on stdin/stdout and reads its CPU time from
             wait4() (user + system)
  stunnel    a pair: a TLS server, a plaintext loopback hop and a TLS
             client that verifies the backend (chain and host name);
             once as two daemons (CPU from /proc/PID/stat), once run
             per connection from the same kind of accept loop
  nginx      its mail proxy (IMAP only; it logs in to the backend in
             plaintext), if installed
  floor      a trivial exec, and exec + GnuTLS start-up + loading the
             gateway's certificate and key (bench/floor); for memory,
             the same holding one idle TLS session (floor --hold)

Every figure is measured for all of them in turn within each of REPS
repetitions; medians and the spread (min-max) over the repetitions
are printed, with ratios and the targets.  Nothing here asserts
anything about time: it prints figures.

Environment: BENCH_REPS (default 5), BENCH_QUICK=1 (smaller sizes and
counts, to try the script), MG_KEEP=1 (keep the scratch directory
/tmp/mailgate-bench.*).
"""

import base64
import os
import socket
import ssl
import statistics
import subprocess
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(TOP, "t", "lib"))
import mailstack  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = int(os.environ.get("BENCH_REPS", "2" if QUICK else "5"))
IMAP_BULK_MB = 5 if QUICK else 50
SMTP_BULK_MB = 2 if QUICK else 20
SESSION_MSG_KB = 20
SEQ_SESSIONS = 5 if QUICK else 12     # one at a time: latency
CONC_SESSIONS = 8 if QUICK else 32    # CONCURRENCY at a time: rate
CONCURRENCY = 4
IDLE_CONNS = 20 if QUICK else 200
MEM_FLOOR = "floor: exec + GnuTLS + one idle TLS session"
SMTPS_CACHE = "mailgate-smtps backend_session_cache"
CLK_TCK = os.sysconf("SC_CLK_TCK")

IMAP_USER, IMAP_PW = mailstack.BOB, mailstack.BOB_PW
SMTP_USER, SMTP_PW = mailstack.ALICE, mailstack.ALICE_PW

T0 = time.monotonic()


def say(text=""):
    print(text, flush=True)


def progress(text):
    say("[%6.1fs] %s" % (time.monotonic() - T0, text))


# ------------------------------------------------------- backend tweaks

DOVECOT_EXTRA = """
# bench: hundreds of concurrent logins of one user from 127.0.0.1
default_process_limit = 1000
default_client_limit = 5000
protocol imap {
  mail_max_userip_connections = 2000
}
"""

POSTFIX_EXTRA = """
# bench: room for the bulk message
message_size_limit = %d
""" % ((SMTP_BULK_MB + 8) * 1024 * 1024)


class BenchDovecot(mailstack.Dovecot):
    def _write_config(self):
        super()._write_config()
        with open(self.conf, "a") as f:
            f.write(DOVECOT_EXTRA)


class BenchPostfix(mailstack.Postfix):
    def _write_config(self):
        super()._write_config()
        main_cf = os.path.join(self.conf_dir, "main.cf")
        with open(main_cf, "a") as f:
            f.write(POSTFIX_EXTRA)
        past = time.time() - 10
        os.utime(main_cf, (past, past))


# ------------------------------------------------------- CPU and memory

def proc_stat_cpu(pid):
    """utime+stime+cutime+cstime of pid in seconds (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def children(pid):
    found = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                found += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return found


def tree(pid):
    out = [pid]
    for c in children(pid):
        out += tree(c)
    return out


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class AcceptLoop:
    """inetd in miniature: one process per connection, socket on fds 0
    and 1, stderr to a log file; CPU of each child from wait4()."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log = open(log_path, "ab")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.cpu = 0.0
        self.started = 0
        self.reaped = 0
        self.failed = 0
        self.live = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            fd = conn.fileno()
            try:
                pid = os.posix_spawn(self.argv[0], self.argv, os.environ,
                                     file_actions=[
                                         (os.POSIX_SPAWN_DUP2, fd, 0),
                                         (os.POSIX_SPAWN_DUP2, fd, 1),
                                         (os.POSIX_SPAWN_DUP2,
                                          self.log.fileno(), 2)])
            except OSError as e:
                print("# %s: spawn failed: %s" % (self.name, e))
                conn.close()
                continue
            conn.close()
            with self.lock:
                self.started += 1
                self.live.add(pid)
            threading.Thread(target=self._reap, args=(pid,),
                             daemon=True).start()

    def _reap(self, pid):
        _, status, ru = os.wait4(pid, 0)
        with self.lock:
            self.cpu += ru.ru_utime + ru.ru_stime
            self.reaped += 1
            self.live.discard(pid)
            if status != 0:
                self.failed += 1

    def settle(self, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.reaped == self.started:
                    return True
            time.sleep(0.005)
        return False

    def stop(self):
        self.closed = True
        self.sock.close()
        for pid in list(self.live):
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        self.settle(5)


class LoopProbe:
    """CPU and memory of the processes that accept loops started."""

    def __init__(self, *loops):
        self.loops = loops

    def cpu(self):
        for loop in self.loops:
            if not loop.settle():
                print("# %s: children still running" % loop.name)
        return sum(loop.cpu for loop in self.loops)

    def failures(self):
        return sum(loop.failed for loop in self.loops)

    def pss_kb(self):
        pids = []
        for loop in self.loops:
            with loop.lock:
                live = list(loop.live)
            for pid in live:
                pids += tree(pid)
        return sum(pss_kb(p) for p in pids), len(pids)


class DaemonProbe:
    """CPU (all threads, reaped children) and memory of daemons."""

    def __init__(self, *pids):
        self.pids = pids

    def _all(self):
        out = []
        for pid in self.pids:
            out += tree(pid)
        return out

    def cpu(self):
        # Let the daemons finish the connections the clients closed.
        time.sleep(0.15)
        return sum(proc_stat_cpu(p) for p in self._all())

    def failures(self):
        return 0

    def pss_kb(self):
        pids = self._all()
        return sum(pss_kb(p) for p in pids), len(pids)


class NoProbe:
    def cpu(self):
        return None

    def failures(self):
        return 0


# ------------------------------------------------------------- clients

class Conn:
    """A line-oriented client connection, plaintext or TLS."""

    def __init__(self, port, ctx, mode, session=None):
        self.t0 = time.perf_counter()
        self.ctx = ctx
        self.raw = socket.create_connection(("127.0.0.1", port),
                                            timeout=60)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.raw
        self.buf = b""
        self.reused = False
        if mode == "tls":
            self.start_tls(session)

    def start_tls(self, session=None):
        self.sock = self.ctx.wrap_socket(self.raw, server_hostname="localhost",
                                         session=session)
        self.reused = self.sock.session_reused

    def elapsed(self):
        return time.perf_counter() - self.t0

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; got %r" % self.buf[-200:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def imap_tagged(self, tag):
        """Lines up to the tagged reply; returns the tagged line."""
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError("IMAP: %r" % line)
                return line

    def smtp_reply(self, code):
        while True:
            line = self.line()
            if line[3:4] != b"-":
                if not line.startswith(code):
                    raise RuntimeError("SMTP: expected %s, got %r"
                                       % (code.decode(), line))
                return line

    def read_eof(self):
        while self.sock.recv(65536):
            pass

    def close(self):
        try:
            self.sock.close()
        finally:
            self.raw.close()


def imap_login(c, mode):
    """Greeting, STARTTLS if asked, LOGIN; returns (t_greet, t_login)."""
    greet = c.line()
    t_greet = c.elapsed()
    if not greet.startswith(b"* OK"):
        raise RuntimeError("IMAP greeting: %r" % greet)
    if mode == "starttls":
        c.send(b"s STARTTLS\r\n")
        c.imap_tagged(b"s")
        c.start_tls()
    c.send(b'l LOGIN "%s" "%s"\r\n' % (IMAP_USER.encode(), IMAP_PW.encode()))
    c.imap_tagged(b"l")
    return t_greet, c.elapsed()


def imap_session(port, ctx, mode, session=None):
    c = Conn(port, ctx, mode, session)
    try:
        t_greet, t_login = imap_login(c, mode)
        c.send(b"x SELECT INBOX\r\n")
        c.imap_tagged(b"x")
        c.send(b"z LOGOUT\r\n")
        c.imap_tagged(b"z")
        sess = c.sock.session if mode == "tls" else None
        return dict(greet=t_greet, login=t_login, total=c.elapsed(),
                    reused=c.reused, session=sess)
    finally:
        c.close()


def imap_fetch(port, ctx, mode, size):
    """FETCH the big message; returns (seconds for the FETCH, bytes)."""
    c = Conn(port, ctx, mode)
    try:
        imap_login(c, mode)
        c.send(b"x SELECT INBOX\r\n")
        c.imap_tagged(b"x")
        t0 = time.perf_counter()
        c.send(b"f FETCH 1 BODY.PEEK[]\r\n")
        head = c.line()
        if b"{" not in head:
            raise RuntimeError("FETCH: %r" % head)
        want = int(head.rsplit(b"{", 1)[1].split(b"}")[0])
        got = len(c.buf)
        c.buf = b""
        buf = bytearray(1 << 18)
        view = memoryview(buf)
        while got < want:
            n = c.sock.recv_into(view)
            if n == 0:
                raise EOFError("FETCH cut after %d bytes" % got)
            got += n
        tail = bytes(buf[:n][-(got - want):]) if got > want else b""
        c.buf = tail
        c.imap_tagged(b"f")
        dt = time.perf_counter() - t0
        if want < size:
            raise RuntimeError("FETCH: %d bytes, expected %d" % (want, size))
        c.send(b"z LOGOUT\r\n")
        c.imap_tagged(b"z")
        return dt, want
    finally:
        c.close()


def smtp_login(c, mode):
    c.smtp_reply(b"220")
    t_greet = c.elapsed()
    c.send(b"EHLO bench.example.test\r\n")
    c.smtp_reply(b"250")
    if mode == "starttls":
        c.send(b"STARTTLS\r\n")
        c.smtp_reply(b"220")
        c.start_tls()
        c.send(b"EHLO bench.example.test\r\n")
        c.smtp_reply(b"250")
    c.send(b"AUTH PLAIN %s\r\n"
           % mailstack.sasl_plain(SMTP_USER, SMTP_PW).encode())
    c.smtp_reply(b"235")
    return t_greet, c.elapsed()


def smtp_send(c, message):
    c.send(b"MAIL FROM:<%s> SIZE=%d\r\n" % (SMTP_USER.encode(), len(message)))
    c.smtp_reply(b"250")
    c.send(b"RCPT TO:<%s>\r\n" % SMTP_USER.encode())
    c.smtp_reply(b"250")
    c.send(b"DATA\r\n")
    c.smtp_reply(b"354")
    t0 = time.perf_counter()
    c.send(message)
    c.send(b".\r\n")
    c.smtp_reply(b"250")
    return time.perf_counter() - t0


def smtp_session(port, ctx, mode, message, session=None):
    c = Conn(port, ctx, mode, session)
    try:
        t_greet, t_login = smtp_login(c, mode)
        smtp_send(c, message)
        c.send(b"QUIT\r\n")
        c.smtp_reply(b"221")
        return dict(greet=t_greet, login=t_login, total=c.elapsed(),
                    reused=c.reused, session=None)
    finally:
        c.close()


def smtp_bulk(port, ctx, mode, message):
    c = Conn(port, ctx, mode)
    try:
        smtp_login(c, mode)
        dt = smtp_send(c, message)
        c.send(b"QUIT\r\n")
        c.smtp_reply(b"221")
        return dt, len(message)
    finally:
        c.close()


def eof_session(port, ctx, mode, session=None):
    """For the floor programs: connect, wait for them to exit."""
    c = Conn(port, ctx, "plain")
    try:
        c.read_eof()
        t = c.elapsed()
        return dict(greet=t, login=t, total=t, reused=False, session=None)
    finally:
        c.close()


def make_message(size, subject):
    """A plain mail of about size bytes: 76-column base64 lines."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@bench.example.test>\r\n\r\n"
            % (SMTP_USER, SMTP_USER, subject,
               base64.b32encode(os.urandom(10)).decode())).encode()
    line_raw = 57
    nlines = max(1, (size - len(head)) // 78)
    chunk = os.urandom(line_raw * 1024)
    lines = []
    for i in range(nlines):
        j = (i % 1024) * line_raw
        lines.append(base64.b64encode(chunk[j:j + line_raw]) + b"\r\n")
    return head + b"".join(lines)


# ------------------------------------------------------------ the peers

STUNNEL_GLOBAL = """\
foreground = yes
pid =
syslog = no
output = {log}
"""

STUNNEL_SERVER = """\
[{name}]
accept = 127.0.0.1:{port}
connect = 127.0.0.1:{hop}
cert = {cert}
key = {key}
sslVersionMin = TLSv1.2
"""

STUNNEL_CLIENT = """\
[{name}]
client = yes
accept = 127.0.0.1:{hop}
connect = 127.0.0.1:{backend}
verifyChain = yes
CAfile = {ca}
checkHost = localhost
sni = localhost
sslVersionMin = TLSv1.2
"""

# inetd mode: the service options at the top, no accept.
STUNNEL_INETD_SERVER = """\
pid =
syslog = no
output = {log}
connect = 127.0.0.1:{hop}
cert = {cert}
key = {key}
sslVersionMin = TLSv1.2
"""

STUNNEL_INETD_CLIENT = """\
pid =
syslog = no
output = {log}
client = yes
connect = 127.0.0.1:{backend}
verifyChain = yes
CAfile = {ca}
checkHost = localhost
sni = localhost
sslVersionMin = TLSv1.2
"""

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{auth_port};
        location /auth {{
            add_header Auth-Status OK always;
            add_header Auth-Server 127.0.0.1 always;
            add_header Auth-Port {imap_port} always;
            return 204;
        }}
    }}
}}
mail {{
    auth_http 127.0.0.1:{auth_port}/auth;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{port} ssl;
        protocol imap;
        imap_auth login plain;
    }}
}}
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_port(port, what, proc=None):
    end = time.monotonic() + 10
    while not mailstack.port_open(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %d" % (what, proc.returncode))
        if time.monotonic() > end:
            raise RuntimeError("%s does not listen" % what)
        time.sleep(0.02)


class Daemon:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(log_path, "ab"),
                                     stderr=subprocess.STDOUT)
        mailstack._register(self)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        mailstack._unregister(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------ figures

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec="%.2f"):
    return "-" if v is None else spec % v


def spread(values, spec="%.2f"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return "%s [%s-%s]" % (spec % statistics.median(values),
                           spec % min(values), spec % max(values))


def kl(kind, label):
    """Result key: the protocol and the path (labels repeat per
    protocol)."""
    return kind.split("-")[0] + ":" + label


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Results:
    def __init__(self):
        self.data = {}

    def add(self, key, value):
        self.data.setdefault(key, []).append(value)

    def get(self, key):
        return self.data.get(key, [])

    def med(self, key):
        return med(self.get(key))


# ------------------------------------------------------------ the bench

class Bench:
    def __init__(self):
        # A private scratch directory with its own certificates: the
        # test suite may clean or regenerate t/tmp while this runs.
        self.work = tempfile.mkdtemp(prefix="mailgate-bench.")
        os.chmod(self.work, 0o755)
        self.certs = self.path("certs")
        subprocess.run(["sh", os.path.join(TOP, "t", "gen-certs.sh"),
                        self.certs], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.res = Results()
        self.notes = []
        self.ctx = mailstack.client_context(self.certs)
        self.session_msg = make_message(SESSION_MSG_KB * 1024,
                                        "bench session")
        self.bulk_msg = make_message(SMTP_BULK_MB * 1024 * 1024,
                                     "bench bulk")

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    # ---------------------------------------------------- setting up

    def rsa_cert(self):
        """An RSA-2048 gateway certificate from the test CA."""
        key = self.path("gateway-rsa-key.pem")
        cert = self.path("gateway-rsa.pem")
        tmpl = write(self.path("gateway-rsa.tmpl"),
                     'cn = "localhost"\norganization = "mailgate bench"\n'
                     'serial = 42\nexpiration_days = 30\nsigning_key\n'
                     'encryption_key\ntls_www_server\n'
                     'dns_name = "localhost"\nip_address = "127.0.0.1"\n')
        for cmd in (["certtool", "--generate-privkey", "--key-type", "rsa",
                     "--bits", "2048", "--no-text", "--outfile", key],
                    ["certtool", "--generate-certificate", "--load-privkey",
                     key, "--load-ca-certificate",
                     os.path.join(self.certs, "ca.pem"),
                     "--load-ca-privkey",
                     os.path.join(self.certs, "ca-key.pem"),
                     "--template", tmpl, "--outfile", cert]):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        return cert, key

    def gateway(self, name, prog, proto, port, security, cert=None,
                key=None, **more):
        c = self.certs
        settings = {
            "cert": cert or os.path.join(c, "gateway.pem"),
            "key": key or os.path.join(c, "gateway-key.pem"),
            "ca": os.path.join(c, "ca.pem"),
            "log": "stderr",
            proto + ".host": "localhost",
            proto + ".port": port,
            proto + ".security": security,
        }
        settings.update(more)
        argv = [os.path.join(TOP, prog), "-c", "/dev/null"]
        for k, v in settings.items():
            argv += ["-o", "%s=%s" % (k, v)]
        return AcceptLoop(name, argv, self.path(name + ".log"))

    def start(self):
        progress("starting Dovecot and Postfix")
        base = self.path("stack")
        self.dovecot = BenchDovecot(os.path.join(base, "dovecot"), self.certs)
        self.dovecot.start()
        self.postfix = BenchPostfix(os.path.join(base, "postfix"),
                                    self.certs, self.dovecot)
        self.postfix.start()
        dv, pf = self.dovecot, self.postfix

        ticket = self.path("ticket.key")
        with open(ticket, "wb") as f:
            f.write(os.urandom(64))
        rsa_cert, rsa_key = self.rsa_cert()
        gw_cert = os.path.join(self.certs, "gateway.pem")
        gw_key = os.path.join(self.certs, "gateway-key.pem")
        ca = os.path.join(self.certs, "ca.pem")

        L = {}
        L["mg-imaps"] = self.gateway("mg-imaps", "mailgate-imaps", "imap",
                                     dv.imaps_port, "tls")
        L["mg-imaps-rsa"] = self.gateway("mg-imaps-rsa", "mailgate-imaps",
                                         "imap", dv.imaps_port, "tls",
                                         cert=rsa_cert, key=rsa_key)
        L["mg-imaps-ticket"] = self.gateway(
            "mg-imaps-ticket", "mailgate-imaps", "imap", dv.imaps_port,
            "tls", ticket_key=ticket)
        L["mg-imap-starttls"] = self.gateway(
            "mg-imap-starttls", "mailgate-imap-starttls", "imap",
            dv.imap_port, "starttls")
        L["mg-smtps"] = self.gateway("mg-smtps", "mailgate-smtps", "smtp",
                                     pf.submissions_port, "tls")
        L["mg-smtp-starttls"] = self.gateway(
            "mg-smtp-starttls", "mailgate-smtp-starttls", "smtp",
            pf.submission_port, "starttls")
        cache = self.path("session-cache")
        os.makedirs(cache, mode=0o700)
        L["mg-smtps-cache"] = self.gateway(
            "mg-smtps-cache", "mailgate-smtps", "smtp", pf.submissions_port,
            "tls", backend_session_cache=cache)
        L["floor-true"] = AcceptLoop("floor-true", ["/bin/true"],
                                     self.path("floor.log"))
        floor = os.path.join(BENCH_DIR, "floor")
        L["floor-p256"] = AcceptLoop("floor-p256", [floor, gw_cert, gw_key],
                                     self.path("floor.log"))
        L["floor-rsa"] = AcceptLoop("floor-rsa", [floor, rsa_cert, rsa_key],
                                    self.path("floor.log"))
        L["floor-hold"] = AcceptLoop("floor-hold",
                                     [floor, "--hold", gw_cert, gw_key],
                                     self.path("floor.log"))
        self.mem_floor = (MEM_FLOOR, "tls", L["floor-hold"].port, "tls",
                          LoopProbe(L["floor-hold"]))

        # stunnel pair as two daemons, one service per protocol each.
        p = {k: mailstack.free_port() for k in
             ("imaps", "smtps", "imap_hop", "smtp_hop")}
        srv = STUNNEL_GLOBAL.format(log=self.path("stunnel-srv.log"))
        cli = STUNNEL_GLOBAL.format(log=self.path("stunnel-cli.log"))
        for name, proto_port, backend in (
                ("imap", p["imaps"], dv.imaps_port),
                ("smtp", p["smtps"], pf.submissions_port)):
            hop = p[name + "_hop"]
            srv += STUNNEL_SERVER.format(name=name, port=proto_port, hop=hop,
                                         cert=gw_cert, key=gw_key)
            cli += STUNNEL_CLIENT.format(name=name, hop=hop, backend=backend,
                                         ca=ca)
        d_srv = Daemon("stunnel-srv", ["stunnel", write(
            self.path("stunnel-srv.conf"), srv)], self.path("stunnel.out"))
        d_cli = Daemon("stunnel-cli", ["stunnel", write(
            self.path("stunnel-cli.conf"), cli)], self.path("stunnel.out"))
        for port in p.values():
            wait_port(port, "stunnel")
        self.stunnel_ports = p
        self.stunnel = DaemonProbe(d_srv.pid, d_cli.pid)

        # stunnel pair per connection (inetd mode).
        self.stunnel_inetd = {}
        for name, backend in (("imap", dv.imaps_port),
                              ("smtp", pf.submissions_port)):
            log = self.path("stunnel-inetd-%s.log" % name)
            cli_loop = AcceptLoop("stunnel-inetd-cli", ["/usr/bin/stunnel", write(
                self.path("stunnel-inetd-cli-%s.conf" % name),
                STUNNEL_INETD_CLIENT.format(log=log, backend=backend,
                                            ca=ca))], log)
            srv_loop = AcceptLoop("stunnel-inetd-srv", ["/usr/bin/stunnel", write(
                self.path("stunnel-inetd-srv-%s.conf" % name),
                STUNNEL_INETD_SERVER.format(log=log, hop=cli_loop.port,
                                            cert=gw_cert, key=gw_key))], log)
            self.stunnel_inetd[name] = (srv_loop, cli_loop)

        # nginx mail proxy (IMAP; plaintext to Dovecot's 143).
        self.nginx = None
        if os.path.exists("/usr/sbin/nginx") and os.path.exists(
                "/usr/lib/nginx/modules/ngx_mail_module.so"):
            ndir = self.path("nginx")
            os.makedirs(ndir, exist_ok=True)
            nport = mailstack.free_port()
            conf = write(os.path.join(ndir, "nginx.conf"), NGINX_CONF.format(
                dir=ndir, auth_port=mailstack.free_port(),
                imap_port=dv.imap_port, cert=gw_cert, key=gw_key,
                port=nport))
            d = Daemon("nginx", ["/usr/sbin/nginx", "-c", conf, "-p", ndir,
                                 "-e", os.path.join(ndir, "nginx-error.log")],
                       self.path("nginx.out"))
            try:
                wait_port(nport, "nginx", d.proc)
                self.nginx = (nport, DaemonProbe(d.pid))
            except RuntimeError as e:
                self.notes.append("nginx skipped: %s" % e)
                d.stop()
        else:
            self.notes.append("nginx skipped: nginx or libnginx-mod-mail "
                              "not installed")
        self.loops = L

        # The subjects: (label, kind, port, client mode, probe).
        ng = []
        if self.nginx:
            ng = [("nginx mail proxy (imaps, plaintext backend)", "imap",
                   self.nginx[0], "tls", self.nginx[1])]
        si, ss = self.stunnel_inetd["imap"], self.stunnel_inetd["smtp"]
        self.imap_subjects = [
            ("mailgate-imaps P-256", "imap", L["mg-imaps"].port, "tls",
             LoopProbe(L["mg-imaps"])),
            ("mailgate-imaps RSA-2048", "imap", L["mg-imaps-rsa"].port, "tls",
             LoopProbe(L["mg-imaps-rsa"])),
            ("mailgate-imaps P-256 ticket_key, resumed", "imap-resume",
             L["mg-imaps-ticket"].port, "tls", LoopProbe(L["mg-imaps-ticket"])),
            ("mailgate-imap-starttls", "imap", L["mg-imap-starttls"].port,
             "starttls", LoopProbe(L["mg-imap-starttls"])),
            ("stunnel pair, daemons", "imap", p["imaps"], "tls",
             self.stunnel),
            ("stunnel pair, per connection", "imap", si[0].port, "tls",
             LoopProbe(*si)),
        ] + ng + [
            ("Dovecot imaps direct (no gateway)", "imap", dv.imaps_port,
             "tls", NoProbe()),
            ("Dovecot imap 143 STARTTLS direct", "imap", dv.imap_port,
             "starttls", NoProbe()),
        ]
        self.smtp_subjects = [
            ("mailgate-smtps", "smtp", L["mg-smtps"].port, "tls",
             LoopProbe(L["mg-smtps"])),
            ("mailgate-smtp-starttls", "smtp", L["mg-smtp-starttls"].port,
             "starttls", LoopProbe(L["mg-smtp-starttls"])),
            (SMTPS_CACHE, "smtp", L["mg-smtps-cache"].port, "tls",
             LoopProbe(L["mg-smtps-cache"])),
            ("stunnel pair, daemons", "smtp", p["smtps"], "tls",
             self.stunnel),
            ("stunnel pair, per connection", "smtp", ss[0].port, "tls",
             LoopProbe(*ss)),
            ("Postfix 465 direct (no gateway)", "smtp", pf.submissions_port,
             "tls", NoProbe()),
            ("Postfix 587 STARTTLS direct", "smtp", pf.submission_port,
             "starttls", NoProbe()),
        ]
        self.floor_subjects = [
            ("floor: exec /bin/true", "eof", L["floor-true"].port, "plain",
             LoopProbe(L["floor-true"])),
            ("floor: exec + GnuTLS + P-256 cert", "eof",
             L["floor-p256"].port, "plain", LoopProbe(L["floor-p256"])),
            ("floor: exec + GnuTLS + RSA-2048 cert", "eof",
             L["floor-rsa"].port, "plain", LoopProbe(L["floor-rsa"])),
        ]
        self.append_big_message()

    def append_big_message(self):
        """Put the bulk message into Bob's INBOX, directly at Dovecot."""
        size = IMAP_BULK_MB * 1024 * 1024
        msg = make_message(size, "bench fetch")
        self.fetch_size = len(msg)
        c = Conn(self.dovecot.imaps_port, self.ctx, "tls")
        try:
            imap_login(c, "tls")
            c.send(b"a APPEND INBOX {%d}\r\n" % len(msg))
            if not c.line().startswith(b"+"):
                raise RuntimeError("APPEND refused")
            c.send(msg + b"\r\n")
            c.imap_tagged(b"a")
            c.send(b"z LOGOUT\r\n")
            c.imap_tagged(b"z")
        finally:
            c.close()
        progress("appended a %.1f MB message for FETCH" % (len(msg) / 1e6))

    # ------------------------------------------------------ measuring

    def crypto_limit(self):
        out = subprocess.run([os.path.join(BENCH_DIR, "crypto-limit")],
                             check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            f = line.split()
            self.res.add(("crypto", f[0]), float(f[-2]))

    def one_session(self, kind, port, mode, tls_state):
        if kind == "imap":
            return imap_session(port, self.ctx, mode)
        if kind == "imap-resume":
            r = imap_session(port, self.ctx, mode,
                             session=getattr(tls_state, "session", None))
            tls_state.session = r["session"]
            return r
        if kind == "smtp":
            return smtp_session(port, self.ctx, mode, self.session_msg)
        return eof_session(port, self.ctx, mode)

    def sessions(self, label, kind, port, mode, probe):
        """SEQ_SESSIONS one at a time, then CONC_SESSIONS CONCURRENCY at a
        time; records latency, rate and CPU per session."""
        key = ("sess", kl(kind, label))
        state = threading.local()
        errors = []

        def run(_):
            try:
                return self.one_session(kind, port, mode, state)
            except Exception as e:  # counted and shown, not fatal
                errors.append(repr(e))
                return None

        # Warm the path (and the client's session for resumption).
        run(0)
        cpu0 = probe.cpu()
        seq = [run(i) for i in range(SEQ_SESSIONS)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            conc = list(pool.map(run, range(CONC_SESSIONS),
                                 chunksize=1))
        wall = time.perf_counter() - t0
        cpu1 = probe.cpu()
        seq = [r for r in seq if r]
        conc = [r for r in conc if r]
        n = SEQ_SESSIONS + CONC_SESSIONS
        if errors:
            print("#   %s: %d failed sessions, first: %s"
                  % (label, len(errors), errors[0][:300]))
            self.res.add(key + ("errors",), len(errors))
        if cpu0 is not None and not errors:
            self.res.add(key + ("cpu_ms",), (cpu1 - cpu0) * 1000 / n)
        if conc and not errors:
            self.res.add(key + ("rate",), len(conc) / wall)
        if seq:
            self.res.add(key + ("greet_ms",),
                         med([r["greet"] * 1000 for r in seq]))
            self.res.add(key + ("login_ms",),
                         med([r["login"] * 1000 for r in seq]))
            self.res.add(key + ("reused",),
                         sum(r["reused"] for r in seq + conc)
                         / (len(seq) + len(conc)))

    def bulk(self, label, kind, port, mode, probe):
        key = ("bulk", kl(kind, label))
        cpu0 = probe.cpu()
        try:
            if kind == "imap":
                dt, nbytes = imap_fetch(port, self.ctx, mode,
                                        self.fetch_size)
            else:
                dt, nbytes = smtp_bulk(port, self.ctx, mode, self.bulk_msg)
        except Exception as e:
            print("#   bulk %s failed: %r" % (label, e))
            self.res.add(key + ("errors",), 1)
            return
        cpu1 = probe.cpu()
        mb = nbytes / (1024 * 1024)
        self.res.add(key + ("mbps",), mb / dt)
        if cpu0 is not None:
            self.res.add(key + ("cpu100",), (cpu1 - cpu0) * 100 / mb)

    def instructions(self):
        """One short session of each path under callgrind: instructions
        are the same from run to run whatever else the machine does,
        unlike CPU seconds (the kernel's share is not counted)."""
        if not shutil.which("valgrind"):
            self.notes.append("valgrind not installed: no instruction "
                              "counts")
            return
        c = self.certs
        cert, key = (os.path.join(c, "gateway.pem"),
                     os.path.join(c, "gateway-key.pem"))
        dv, pf = self.dovecot, self.postfix
        cache = self.path("session-cache-cg")
        os.makedirs(cache, mode=0o700)
        paths = [
            ("floor: exec + GnuTLS + P-256 cert", "eof",
             AcceptLoop("cg-floor", [os.path.join(BENCH_DIR, "floor"),
                                     cert, key], self.path("cg.log")),
             "plain"),
            ("mailgate-imaps P-256", "imap",
             self.gateway("cg-imaps", "mailgate-imaps", "imap",
                          dv.imaps_port, "tls"), "tls"),
            ("mailgate-smtps", "smtp",
             self.gateway("cg-smtps", "mailgate-smtps", "smtp",
                          pf.submissions_port, "tls"), "tls"),
            (SMTPS_CACHE, "smtp",
             self.gateway("cg-smtps-cache", "mailgate-smtps", "smtp",
                          pf.submissions_port, "tls",
                          backend_session_cache=cache), "tls"),
        ]
        for label, kind, loop, mode in paths:
            # The first session warms the path and fills the cache.
            self.one_session(kind, loop.port, mode, None)
            loop.settle()
            out = self.path("callgrind-%s.out" % loop.name)
            loop.argv = ["valgrind", "--tool=callgrind",
                         "--callgrind-out-file=" + out] + loop.argv
            loop.argv[0] = shutil.which("valgrind")
            try:
                self.one_session(kind, loop.port, mode, None)
            except Exception as e:
                print("#   callgrind %s: %r" % (label, e))
            loop.settle(60)
            loop.stop()
            try:
                with open(out) as f:
                    for line in f:
                        if line.startswith("summary:") or \
                                line.startswith("totals:"):
                            self.res.add(("instr", label),
                                         int(line.split()[1]))
                            break
            except OSError as e:
                print("#   callgrind %s: %s" % (label, e))

    def hold_idle(self, label, port, mode, probe, login_imap=True):
        """IDLE_CONNS logged-in IMAP connections held open: PSS.  For
        the memory floor (login_imap false), TLS connections only."""
        base, _ = probe.pss_kb()
        conns = []
        errors = 0
        try:
            def login(_):
                c = Conn(port, self.ctx, mode)
                if not login_imap:
                    return c
                imap_login(c, mode)
                c.send(b"x SELECT INBOX\r\n")
                c.imap_tagged(b"x")
                return c
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                for fut in [pool.submit(login, i) for i in range(IDLE_CONNS)]:
                    try:
                        conns.append(fut.result())
                    except Exception as e:
                        errors += 1
                        if errors == 1:
                            print("#   idle %s: %r" % (label, e))
            time.sleep(0.5)
            total, nproc = probe.pss_kb()
        finally:
            for c in conns:
                try:
                    c.close()
                except OSError:
                    pass
        key = ("mem", kl("imap", label))
        if errors:
            self.res.add(key + ("errors",), errors)
        if conns:
            self.res.add(key + ("total_kb",), total / len(conns))
            self.res.add(key + ("delta_kb",), (total - base) / len(conns))
            self.res.add(key + ("nproc",), nproc)
        probe.cpu()  # let per-connection processes end

    def run(self):
        self.start()
        for n in self.notes:
            say("# " + n)
        mem_subjects = [s for s in self.imap_subjects
                        if s[0] in ("mailgate-imaps P-256",
                                    "mailgate-imap-starttls",
                                    "stunnel pair, daemons",
                                    "stunnel pair, per connection")
                        or s[0].startswith("nginx")]
        for rep in range(1, REPS + 1):
            progress("repetition %d of %d: crypto limit" % (rep, REPS))
            self.crypto_limit()
            progress("repetition %d: bulk IMAP FETCH %d MB, SMTP DATA %d MB"
                     % (rep, IMAP_BULK_MB, SMTP_BULK_MB))
            for s in self.imap_subjects + self.smtp_subjects:
                if s[1] != "imap-resume" and not s[0].startswith(
                        "Dovecot imap 143") and not s[0].startswith(
                        "Postfix 587") and "RSA" not in s[0] and \
                        s[0] != SMTPS_CACHE:
                    self.bulk(s[0], s[1], s[2], s[3], s[4])
            progress("repetition %d: short sessions" % rep)
            for s in self.floor_subjects + self.imap_subjects + \
                    self.smtp_subjects:
                self.sessions(*s)
            if rep <= 2:
                progress("repetition %d: %d idle IMAP connections"
                         % (rep, IDLE_CONNS))
                for s in mem_subjects:
                    self.hold_idle(s[0], s[2], s[3], s[4])
                f = self.mem_floor
                self.hold_idle(f[0], f[2], f[3], f[4], login_imap=False)
        progress("instructions per session (callgrind)")
        self.instructions()
        progress("done measuring")
        self.report()

    # ------------------------------------------------------- report

    def report(self):
        r = self.res
        say()
        say("mailgate bench: %d repetitions, medians [min-max] over them"
            % REPS)
        say("machine: %d CPUs, %s" % (os.cpu_count(), os.uname().release))
        for n in self.notes:
            say("note: " + n)

        say()
        say("== crypto limit: decrypt + encrypt 100 MB, 16 KB records, one "
            "core (CPU s per 100 MB)")
        say("   ALG: memory copies only; ALG+sockets: read from one loopback "
            "TCP connection,")
        say("   written to another, as a relay must (bench/crypto-limit.c)")
        for alg in ("AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305",
                    "AES-128-GCM+sockets", "AES-256-GCM+sockets"):
            say("  %-20s %s" % (alg, spread(r.get(("crypto", alg)), "%.3f")))
        cipher = self.negotiated_cipher()
        lim_alg = ("AES-128-GCM" if "AES-128" in cipher else
                   "AES-256-GCM") + "+sockets"
        limit = r.med(("crypto", lim_alg))
        say("  negotiated on the client leg: %s; limit used: %s = %s s"
            % (cipher, lim_alg, fmt(limit, "%.3f")))

        say()
        say("== bulk relay: IMAP FETCH of a %.1f MB message, SMTP DATA of a "
            "%.1f MB message" % (self.fetch_size / 1e6,
                                 len(self.bulk_msg) / 1e6))
        say("  net: minus the median CPU of one short session of the same "
            "path (handshakes, login)")
        say("  %-46s %-20s %-22s %-10s %-12s %s" % (
            "path", "MB/s", "CPU s/100MB", "CPU/limit", "net s/100MB",
            "net/limit"))
        for s in self.imap_subjects + self.smtp_subjects:
            key = ("bulk", kl(s[1], s[0]))
            if not r.get(key + ("mbps",)) and not r.get(key + ("errors",)):
                continue
            cpu = r.med(key + ("cpu100",))
            net = self.net_cpu(s[1], s[0], cpu)
            say("  %-46s %-20s %-22s %-10s %-12s %s" % (
                (s[1].upper() + " " + s[0])[:46],
                spread(r.get(key + ("mbps",)), "%.0f"),
                spread(r.get(key + ("cpu100",)), "%.3f"),
                fmt(ratio(cpu, limit), "%.2fx"), fmt(net, "%.3f"),
                fmt(ratio(net, limit), "%.2fx")))
            if r.get(key + ("errors",)):
                say("    (%d failed)" % len(r.get(key + ("errors",))))

        say()
        say("== short sessions: IMAP = TLS, LOGIN, SELECT, LOGOUT; SMTP = "
            "TLS, AUTH, %d KB message, QUIT" % SESSION_MSG_KB)
        say("   %d one at a time (latency: connect->greeting, "
            "connect->login done), then %d, %d at a time (rate); CPU over "
            "all %d" % (SEQ_SESSIONS, CONC_SESSIONS, CONCURRENCY,
                        SEQ_SESSIONS + CONC_SESSIONS))
        say("  %-46s %-22s %-22s %-22s %-22s %s" % (
            "path", "CPU ms/session", "sessions/s", "greeting ms",
            "login done ms", "resumed"))
        for s in self.floor_subjects + self.imap_subjects + \
                self.smtp_subjects:
            key = ("sess", kl(s[1], s[0]))
            reused = r.med(key + ("reused",))
            say("  %-46s %-22s %-22s %-22s %-22s %s" % (
                (s[1].split("-")[0].upper() + " " + s[0])[:46],
                spread(r.get(key + ("cpu_ms",))),
                spread(r.get(key + ("rate",)), "%.0f"),
                spread(r.get(key + ("greet_ms",))),
                spread(r.get(key + ("login_ms",))),
                fmt(reused * 100 if reused is not None else None, "%.0f%%")))
            errs = r.get(key + ("errors",))
            if errs:
                say("    (failed sessions in %d repetitions: %s)"
                    % (len(errs), errs))

        ends = resumed = 0
        try:
            with open(self.path("mg-smtps-cache.log"), errors="replace") as f:
                for line in f:
                    if " event=end " in line:
                        ends += 1
                        resumed += " verify=resumed " in line
        except OSError:
            pass
        say("  %s: backend leg resumed in %d of %d sessions"
            % (SMTPS_CACHE, resumed, ends))

        say()
        say("== instructions per short session (callgrind, one session "
            "each; the same from run to run)")
        fl = r.med(("instr", "floor: exec + GnuTLS + P-256 cert"))
        for label in ("floor: exec + GnuTLS + P-256 cert",
                      "mailgate-imaps P-256", "mailgate-smtps", SMTPS_CACHE):
            n = r.med(("instr", label))
            say("  %-46s %-14s %s" % (label, fmt(
                None if n is None else n / 1e6, "%.2f M"),
                fmt(ratio(n, fl), "%.2fx floor")))

        say()
        say("== memory: %d idle logged-in IMAP connections held open "
            "(PSS, KB per connection)" % IDLE_CONNS)
        say("  %-46s %-22s %-26s %s" % ("path", "all its processes/conn",
                                         "growth over idle/conn",
                                         "processes"))
        for s in [self.mem_floor] + self.imap_subjects:
            key = ("mem", kl("imap", s[0]))
            if not r.get(key + ("total_kb",)):
                continue
            say("  %-46s %-22s %-26s %s" % (
                s[0], spread(r.get(key + ("total_kb",)), "%.0f"),
                spread(r.get(key + ("delta_kb",)), "%.0f"),
                fmt(r.med(key + ("nproc",)), "%.0f")))
            if r.get(key + ("errors",)):
                say("    (failed logins: %s)" % r.get(key + ("errors",)))

        self.summary(limit)

    def net_cpu(self, kind, label, cpu100):
        """Bulk CPU per 100 MB without one session's set-up CPU."""
        sess = self.res.med(("sess", kl(kind, label), "cpu_ms"))
        size = self.fetch_size if kind == "imap" else len(self.bulk_msg)
        if cpu100 is None or sess is None:
            return None
        mb = size / (1024 * 1024)
        return (cpu100 * mb / 100 - sess / 1000) * 100 / mb

    def negotiated_cipher(self):
        try:
            with open(self.path("mg-imaps.log"), errors="replace") as f:
                for line in f:
                    for field in line.split():
                        if field.startswith("client_tls="):
                            return field.split("=", 1)[1]
        except OSError:
            pass
        return "?"

    def summary(self, limit):
        r = self.res
        rows = []

        def row(figure, mg, peers, rat, target, met):
            rows.append((figure, mg, peers, rat, target, met))

        def verdict(cond):
            return "-" if cond is None else ("yes" if cond else "NO")

        peer_names = (("stunnel pair, daemons", "stunnel/d"),
                      ("stunnel pair, per connection", "stunnel/c"),
                      ("nginx mail proxy (imaps, plaintext backend)",
                       "nginx"))
        for label, kind in (("mailgate-imaps P-256", "imap"),
                            ("mailgate-imap-starttls", "imap"),
                            ("mailgate-smtps", "smtp"),
                            ("mailgate-smtp-starttls", "smtp")):
            cpu = r.med(("bulk", kl(kind, label), "cpu100"))
            peers = []
            for p, short in peer_names:
                v = r.med(("bulk", kl(kind, p), "cpu100"))
                if v is not None:
                    peers.append("%s %.3f (%.2fx limit)"
                                 % (short, v, ratio(v, limit) or 0))
            rt = ratio(cpu, limit)
            row("bulk CPU s/100MB %s %s" % (kind.upper(), label.split()[0]),
                fmt(cpu, "%.3f"), ", ".join(peers),
                fmt(rt, "%.2fx limit"), "<= 1.25x crypto limit",
                verdict(None if rt is None else rt <= 1.25))
        floor_p = r.med(("sess", kl("eof", "floor: exec + GnuTLS + P-256 "
                                    "cert"), "cpu_ms"))
        floor_r = r.med(("sess", kl("eof", "floor: exec + GnuTLS + RSA-2048 "
                                    "cert"), "cpu_ms"))
        for label, kind, fl, fname in (
                ("mailgate-imaps P-256", "imap", floor_p, "P-256"),
                ("mailgate-imaps RSA-2048", "imap", floor_r, "RSA"),
                ("mailgate-imaps P-256 ticket_key, resumed", "imap", floor_p,
                 "P-256"),
                ("mailgate-imap-starttls", "imap", floor_p, "P-256"),
                ("mailgate-smtps", "smtp", floor_p, "P-256"),
                ("mailgate-smtp-starttls", "smtp", floor_p, "P-256"),
                (SMTPS_CACHE, "smtp", floor_p, "P-256")):
            cpu = r.med(("sess", kl(kind, label), "cpu_ms"))
            st = r.med(("sess", kl(kind, "stunnel pair, per connection"),
                        "cpu_ms"))
            sd = r.med(("sess", kl(kind, "stunnel pair, daemons"),
                        "cpu_ms"))
            rf = ratio(cpu, fl)
            rs = ratio(st, cpu)
            row("CPU ms/session %s %s" % (kind.upper(), label),
                fmt(cpu), "floor(%s) %s; stunnel/c %s; stunnel/d %s" % (
                    fname, fmt(fl), fmt(st), fmt(sd)),
                "%s floor; stunnel/c %s" % (fmt(rf, "%.2fx"),
                                            fmt(rs, "%.2fx")),
                ("<= 2x floor" if fname == "P-256" else "(RSA: info)") +
                "; stunnel/c >= 4x",
                "%s; %s" % (verdict(None if rf is None or fname != "P-256"
                                    else rf <= 2),
                            verdict(None if rs is None else rs >= 4)))
        mem = r.med(("mem", kl("imap", "mailgate-imaps P-256"), "total_kb"))
        peers = []
        for p, short in peer_names:
            v = r.med(("mem", kl("imap", p), "delta_kb"))
            t = r.med(("mem", kl("imap", p), "total_kb"))
            if t is not None:
                peers.append("%s %.0f (growth %.0f)" % (short, t, v))
        mfl = r.med(("mem", kl("imap", MEM_FLOOR), "total_kb"))
        peers.insert(0, "floor (one TLS session) %s" % fmt(mfl, "%.0f"))
        row("PSS KB per idle IMAP conn (imaps)", fmt(mem, "%.0f"),
            ", ".join(peers), fmt(ratio(mem, mfl), "%.2fx floor"),
            "<= 500 KB",
            verdict(None if mem is None else mem <= 500))
        fl_lat = r.med(("sess", kl("eof", "floor: exec + GnuTLS + P-256 "
                                   "cert"), "greet_ms"))
        for label, kind, direct in (
                ("mailgate-smtp-starttls", "smtp",
                 "Postfix 587 STARTTLS direct"),
                ("mailgate-imap-starttls", "imap",
                 "Dovecot imap 143 STARTTLS direct"),
                ("mailgate-smtps", "smtp", "Postfix 465 direct (no gateway)"),
                ("mailgate-imaps P-256", "imap",
                 "Dovecot imaps direct (no gateway)")):
            g = self._of(kind, label, "greet_ms")
            d = self._of(kind, direct, "greet_ms")
            plain = "starttls" in label
            diff = None if g is None or fl_lat is None else g - fl_lat
            row("connect->greeting ms %s" % label, fmt(g),
                "direct backend %s; exec+GnuTLS floor %s" % (fmt(d),
                                                              fmt(fl_lat)),
                "%s vs floor; %s vs backend" % (
                    fmt(diff, "%+.2f ms"),
                    fmt(None if g is None or d is None else g - d,
                        "%+.2f ms")),
                "<= floor + 1 ms" if plain else "(information)",
                verdict(None if not plain or diff is None else diff <= 1.0))

        say()
        say("== summary (medians)")
        widths = [max(len(str(x[i])) for x in rows + [(
            "figure", "mailgate", "peer(s)", "ratio", "target", "met?")])
            for i in range(6)]
        line = " | ".join("%-*s" % (w, h) for w, h in zip(
            widths, ("figure", "mailgate", "peer(s)", "ratio", "target",
                     "met?")))
        say(line)
        say("-" * len(line))
        for x in rows:
            say(" | ".join("%-*s" % (w, v) for w, v in zip(widths, x)))

    def _of(self, kind, label, what):
        return self.res.med(("sess", kl(kind, label), what))


def main():
    if os.geteuid() != 0:
        sys.exit("make bench runs Dovecot and Postfix as root: run it as "
                 "root")
    bench = Bench.__new__(Bench)
    try:
        bench.__init__()
        bench.run()
    finally:
        for loop in getattr(bench, "loops", {}).values():
            loop.stop()
        for pair in getattr(bench, "stunnel_inetd", {}).values():
            for loop in pair:
                loop.stop()
        mailstack.stop_all()
        work = getattr(bench, "work", None)
        if work and not os.environ.get("MG_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        elif work:
            print("# kept " + work)
    progress("total run time")


if __name__ == "__main__":
    main()
