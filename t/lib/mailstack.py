"""Private Dovecot and Postfix instances, plus TAP output, for the tests.

Everything runs from a scratch directory on loopback ports; the system's
own Postfix and Dovecot configuration is never read or changed.  Servers
that were started are always stopped when the test process exits.
"""

import atexit
import base64
import fcntl
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

T_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMP_DIR = os.path.join(T_DIR, "tmp")
GEN_CERTS = os.path.join(T_DIR, "gen-certs.sh")

ALICE = "alice@example.test"
ALICE_PW = 's3cret pass "q" \u00e9'
BOB = "bob@example.test"
BOB_PW = "bobpw"
USERS = {ALICE: ALICE_PW, BOB: BOB_PW}

SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


# ---------------------------------------------------------------- helpers

_ports_given = set()


def free_port():
    """Return a TCP port on 127.0.0.1 that is free right now."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_until(pred, timeout, what):
    """Poll pred() until it is true; raise TimeoutError after timeout s."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.02)


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def pid_alive(pid):
    """True if pid runs and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_group(pid):
    """SIGKILL the process group that pid leads (pid alone otherwise)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return "(no log: %s)" % e


def run(cmd, env=None):
    """Run cmd, return (status, combined output as text)."""
    full_env = dict(os.environ, PATH=SBIN_PATH + ":" + os.environ["PATH"])
    full_env.pop("MAIL_CONFIG", None)
    full_env.update(env or {})
    # A file, not a pipe: daemons keep their inherited stdout open.
    with tempfile.TemporaryFile() as out:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, env=full_env,
                           timeout=60)
        out.seek(0)
        return p.returncode, out.read().decode(errors="replace")


def write_file(path, text, mode=0o644):
    """Write text; backdate it, as Postfix waits on a just-changed main.cf.
    """
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    past = time.time() - 10
    os.utime(path, (past, past))


def make_dir(path, mode=0o755, user="root", group="root"):
    os.makedirs(path, exist_ok=True)
    os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    os.chmod(path, mode)


# ------------------------------------------------- cleanup and scratch

_running = []
_scratch = []


def _register(server):
    if server not in _running:
        _running.append(server)


def _unregister(server):
    if server in _running:
        _running.remove(server)


def stop_all():
    """Stop every server still running, newest first."""
    for server in reversed(list(_running)):
        try:
            server.stop()
        except Exception as e:  # keep stopping the others
            print("# stopping %r failed: %s" % (server, e), file=sys.stderr)


def _on_sigterm(signum, frame):
    sys.exit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_sigterm)


def test_name():
    base = os.path.basename(sys.argv[0])
    return base[:-2] if base.endswith(".t") else base


def scratch_dir(name=None):
    """Create t/tmp/NAME afresh (NAME defaults to the test's name)."""
    path = os.path.join(TMP_DIR, name or test_name())
    shutil.rmtree(path, ignore_errors=True)
    make_dir(path)
    _scratch.append(path)
    return path


def remove_scratch():
    """Remove the scratch dirs unless MG_KEEP is set."""
    if os.environ.get("MG_KEEP"):
        return
    for path in _scratch:
        shutil.rmtree(path, ignore_errors=True)


def certs():
    """Generate (once) the test certificates; return their directory."""
    path = os.path.join(TMP_DIR, "certs")
    os.makedirs(TMP_DIR, exist_ok=True)
    with open(os.path.join(TMP_DIR, "certs.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status, out = run(["sh", GEN_CERTS, path])
    if status != 0:
        raise RuntimeError("gen-certs.sh failed:\n" + out)
    os.chmod(path, 0o755)
    return path


def client_context(certdir):
    """An SSL client context that trusts only the test CA."""
    ctx = ssl.create_default_context(cafile=os.path.join(certdir, "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---------------------------------------------------------------- Dovecot

DOVECOT_CONF = """\
# Private test instance; generated by t/lib/mailstack.py
instance_name = mailgate-test-{imap_port}
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {run_dir}
state_dir = {state_dir}
log_path = {log}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
stats_writer_socket_path =
mail_location = maildir:~/Maildir
mail_save_crlf = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
  default_fields = uid={uid} gid={gid} home={mail_dir}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener {lmtp_socket} {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener {auth_socket} {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """A private Dovecot: IMAP (STARTTLS), IMAPS, LMTP and auth sockets."""

    mail_user, mail_group = "nobody", "nogroup"

    def __init__(self, basedir, certdir, cert=None, key=None):
        self.basedir = os.path.abspath(basedir)
        self.cert = cert or os.path.join(certdir, "backend.pem")
        self.key = key or os.path.join(certdir, "backend-key.pem")
        self.conf = os.path.join(self.basedir, "dovecot.conf")
        self.log = os.path.join(self.basedir, "dovecot.log")
        self.run_dir = os.path.join(self.basedir, "run")
        self.mail_dir = os.path.join(self.basedir, "mail")
        self.users_file = os.path.join(self.basedir, "users")
        self.lmtp_socket = os.path.join(self.basedir, "lmtp")
        self.auth_socket = os.path.join(self.basedir, "auth")
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.pid = None

    def __repr__(self):
        return "Dovecot(%s)" % self.basedir

    def maildir(self, user):
        return os.path.join(self.mail_dir, user, "Maildir")

    def _users_text(self):
        return "".join("%s:{PLAIN}%s::::::\n" % (u, p)
                       for u, p in USERS.items())

    def _write_config(self):
        make_dir(self.basedir)
        make_dir(self.mail_dir, 0o755, self.mail_user, self.mail_group)
        write_file(self.users_file, self._users_text(), 0o644)
        write_file(self.conf, DOVECOT_CONF.format(
            run_dir=self.run_dir, log=self.log,
            state_dir=os.path.join(self.basedir, "state"),
            cert=self.cert, key=self.key, users=self.users_file,
            uid=self.mail_user, gid=self.mail_group,
            mail_dir=self.mail_dir, imap_port=self.imap_port,
            imaps_port=self.imaps_port, lmtp_socket=self.lmtp_socket,
            auth_socket=self.auth_socket))

    def _ready(self):
        return (os.path.exists(self.lmtp_socket)
                and os.path.exists(self.auth_socket)
                and port_open(self.imap_port)
                and port_open(self.imaps_port))

    def start(self, timeout=15):
        self._write_config()
        status, out = run(["dovecot", "-c", self.conf])
        if status != 0:
            raise RuntimeError("dovecot failed to start (%d):\n%s\n"
                               "log:\n%s" % (status, out, tail(self.log)))
        _register(self)
        self.pid = read_pid(os.path.join(self.run_dir, "master.pid"))
        try:
            wait_until(self._ready, timeout, "dovecot to listen")
        except TimeoutError as e:
            raise RuntimeError("%s\nlog:\n%s" % (e, tail(self.log)))

    def stop(self, grace=0.5):
        """Stop the instance: SIGTERM to the master, as `dovecot stop`
        does.  The master lingers for seconds after it, so after a short
        grace its own process group is killed.
        """
        _unregister(self)
        pid = self.pid or read_pid(os.path.join(self.run_dir, "master.pid"))
        self.pid = None
        if not pid or not pid_alive(pid):
            run(["dovecot", "-c", self.conf, "stop"])
            return
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not pid_alive(pid), grace, "dovecot")
        except TimeoutError:
            kill_group(pid)
            wait_until(lambda: not pid_alive(pid), 10, "dovecot to die")


# ---------------------------------------------------------------- Postfix

POSTFIX_MAIN_CF = """\
# Private test instance; generated by t/lib/mailstack.py
compatibility_level = 3.6
queue_directory = {queue_dir}
data_directory = {data_dir}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {log}
maillog_file_prefixes = {basedir}
syslog_name = mailgate-test-postfix
myhostname = mail.example.test
mydomain = example.test
myorigin = $mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
biff = no
virtual_mailbox_domains = example.test
virtual_transport = lmtp:unix:{lmtp_socket}
smtpd_reject_unlisted_recipient = no
smtpd_tls_chain_files = {key}, {cert}
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
"""

# service type private unpriv chroot wakeup maxproc command
POSTFIX_MASTER_CF = """\
# Private test instance; generated by t/lib/mailstack.py
127.0.0.1:{submission_port} inet n - n - - smtpd
  -o syslog_name=mailgate-test-postfix/submission
127.0.0.1:{submissions_port} inet n - n - - smtpd
  -o syslog_name=mailgate-test-postfix/submissions
  -o smtpd_tls_wrappermode=yes
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
smtp unix - - n - - smtp
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

# queue subdirectory: (mode, owner, group)
POSTFIX_QUEUE_DIRS = {
    "active": (0o700, "postfix", "root"),
    "bounce": (0o700, "postfix", "root"),
    "corrupt": (0o700, "postfix", "root"),
    "defer": (0o700, "postfix", "root"),
    "deferred": (0o700, "postfix", "root"),
    "flush": (0o700, "postfix", "root"),
    "hold": (0o700, "postfix", "root"),
    "incoming": (0o700, "postfix", "root"),
    "private": (0o700, "postfix", "root"),
    "saved": (0o700, "postfix", "root"),
    "trace": (0o700, "postfix", "root"),
    "maildrop": (0o730, "postfix", "postdrop"),
    "public": (0o710, "postfix", "postdrop"),
    "pid": (0o755, "root", "root"),
}


class Postfix:
    """A private Postfix with submission (587-like) and submissions."""

    def __init__(self, basedir, certdir, dovecot, cert=None, key=None):
        self.basedir = os.path.abspath(basedir)
        self.cert = cert or os.path.join(certdir, "backend.pem")
        self.key = key or os.path.join(certdir, "backend-key.pem")
        self.dovecot = dovecot
        self.conf_dir = os.path.join(self.basedir, "etc")
        self.queue_dir = os.path.join(self.basedir, "queue")
        self.data_dir = os.path.join(self.basedir, "data")
        self.log = os.path.join(self.basedir, "postfix.log")
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.pid = None

    def __repr__(self):
        return "Postfix(%s)" % self.basedir

    def _make_dirs(self):
        make_dir(self.basedir)
        make_dir(self.conf_dir)
        make_dir(self.queue_dir)
        make_dir(self.data_dir, 0o700, "postfix", "root")
        for name, (mode, user, group) in POSTFIX_QUEUE_DIRS.items():
            make_dir(os.path.join(self.queue_dir, name), mode, user, group)

    def _write_config(self):
        values = dict(
            queue_dir=self.queue_dir, data_dir=self.data_dir,
            log=self.log, basedir=self.basedir,
            lmtp_socket=self.dovecot.lmtp_socket,
            auth_socket=self.dovecot.auth_socket,
            cert=self.cert, key=self.key,
            submission_port=self.submission_port,
            submissions_port=self.submissions_port)
        write_file(os.path.join(self.conf_dir, "main.cf"),
                   POSTFIX_MAIN_CF.format(**values))
        write_file(os.path.join(self.conf_dir, "master.cf"),
                   POSTFIX_MASTER_CF.format(**values))

    def _postfix(self, *args):
        return run(["postfix", "-c", self.conf_dir] + list(args),
                   env={"MAIL_CONFIG": self.conf_dir})

    def _ready(self):
        return (port_open(self.submission_port)
                and port_open(self.submissions_port))

    def _fail(self, what, out=""):
        raise RuntimeError("postfix %s:\n%s\npostfix.log:\n%s"
                           % (what, out, tail(self.log)))

    def start(self, timeout=15):
        self._make_dirs()
        self._write_config()
        status, out = self._postfix("start")
        if status != 0:
            self._fail("start failed (status %d)" % status, out)
        _register(self)
        self.pid = read_pid(os.path.join(self.queue_dir, "pid",
                                         "master.pid"))
        try:
            wait_until(self._ready, timeout, "postfix to listen")
        except TimeoutError as e:
            self._fail(str(e), out)

    def stop(self, timeout=10):
        """Stop the instance: SIGTERM to the master, as `postfix stop` does,
        but polled quickly instead of its one-second sleeps.
        """
        _unregister(self)
        pid = self.pid or read_pid(os.path.join(self.queue_dir, "pid",
                                                "master.pid"))
        self.pid = None
        if not pid or not pid_alive(pid):
            self._postfix("stop")
            return
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not pid_alive(pid), timeout, "postfix")
        except TimeoutError:
            kill_group(pid)


def start_stack(basedir, certdir):
    """Start Dovecot and then Postfix under basedir; return both."""
    dovecot = Dovecot(os.path.join(basedir, "dovecot"), certdir)
    dovecot.start()
    postfix = Postfix(os.path.join(basedir, "postfix"), certdir, dovecot)
    postfix.start()
    return dovecot, postfix


# ------------------------------------------------------- mail and login

def read_messages(dovecot, user):
    """Contents (bytes) of the messages in user's Maildir new/ and cur/."""
    found = []
    for sub in ("new", "cur"):
        path = os.path.join(dovecot.maildir(user), sub)
        try:
            names = sorted(os.listdir(path))
        except FileNotFoundError:
            continue
        for name in names:
            with open(os.path.join(path, name), "rb") as f:
                found.append(f.read())
    return found


def wait_for_mail(dovecot, user, timeout=10, count=1, match=None):
    """Poll user's Maildir until count messages (containing match, if
    given) are there or timeout seconds passed; return what is there."""
    def matching():
        msgs = read_messages(dovecot, user)
        return [m for m in msgs if match is None or match in m]
    end = time.monotonic() + timeout
    msgs = matching()
    while len(msgs) < count and time.monotonic() < end:
        time.sleep(0.05)
        msgs = matching()
    return msgs


def message_body(raw):
    """The body of a raw message: everything after the first empty line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            return body
    return b""


def sasl_plain(user, password):
    """Base64 of a SASL PLAIN response, UTF-8 encoded."""
    raw = b"\0" + user.encode() + b"\0" + password.encode()
    return base64.b64encode(raw).decode("ascii")


def smtp_auth_plain(smtp, user, password):
    """AUTH PLAIN with a UTF-8 password (smtplib only does ASCII)."""
    return smtp.docmd("AUTH", "PLAIN " + sasl_plain(user, password))


class IMAP4From(imaplib.IMAP4):
    """IMAP4 connecting from a chosen source address.  Dovecot treats a
    client whose address equals the server's as secured (no
    LOGINDISABLED); connect from 127.0.0.2 to see the normal behaviour.
    """

    def __init__(self, host, port, source="127.0.0.2", timeout=10):
        self.source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def imap_login_literal(imap, user, password):
    """IMAP LOGIN sending the password as a literal (8-bit safe)."""
    imap.literal = password.encode()
    quoted = '"%s"' % user.replace("\\", "\\\\").replace('"', '\\"')
    typ, data = imap._simple_command("LOGIN", quoted)
    if typ == "OK":
        imap.state = "AUTH"
    return typ, data


def imap_auth_plain(imap, user, password):
    """IMAP AUTHENTICATE PLAIN with a UTF-8 password."""
    raw = b"\0" + user.encode() + b"\0" + password.encode()
    return imap.authenticate("PLAIN", lambda challenge: raw)


# -------------------------------------------------------------------- TAP

class Tap:
    """Minimal TAP producer.  Call done() at the end."""

    def __init__(self):
        self.count = 0
        self.failed = 0
        self.planned = None

    def plan(self, n):
        self.planned = n
        self._out("1..%d" % n)

    def skip_all(self, reason):
        self._out("1..0 # SKIP %s" % reason)
        remove_scratch()
        sys.exit(0)

    def _out(self, line):
        print(line, flush=True)

    def diag(self, msg):
        sys.stdout.flush()
        for line in str(msg).splitlines() or [""]:
            print("# " + line, file=sys.stderr, flush=True)

    def note(self, msg):
        for line in str(msg).splitlines() or [""]:
            self._out("# " + line)

    def ok(self, cond, name=""):
        self.count += 1
        word = "ok" if cond else "not ok"
        self._out("%s %d - %s" % (word, self.count, name))
        if not cond:
            self.failed += 1
            self.diag("Failed test '%s'" % name)
        return bool(cond)

    def is_(self, got, expected, name=""):
        good = self.ok(got == expected, name)
        if not good:
            self.diag("     got: %r" % (got,))
            self.diag("expected: %r" % (expected,))
        return good

    def skip(self, reason, count=1):
        for _ in range(count):
            self.count += 1
            self._out("ok %d # skip %s" % (self.count, reason))

    def done_testing(self):
        self.done()

    def done(self):
        """Print the plan if needed, stop servers, exit with a status."""
        if self.planned is None:
            self.plan(self.count)
        stop_all()
        bad_plan = self.planned != self.count
        if bad_plan:
            self.diag("planned %d tests but ran %d"
                      % (self.planned, self.count))
        if self.failed == 0 and not bad_plan:
            remove_scratch()
            sys.exit(0)
        sys.exit(min(self.failed, 254) or 255)
