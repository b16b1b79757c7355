#!/usr/bin/python3
"""The connection on fd 3 (socket activation without
StandardInput=socket): systemd-socket-activate without --inetd sets
LISTEN_FDS=1 and LISTEN_PID, and the gateway serves the socket on fd 3.
LISTEN_FDS meant for another process (LISTEN_PID not ours) is ignored
and stdin and stdout are used."""

import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import gateway  # noqa: E402
import mailstack  # noqa: E402

t = mailstack.Tap()
certdir = mailstack.certs()
base = mailstack.scratch_dir()


def settings(port):
    return gateway.smtp_settings(certdir, "127.0.0.1", port, "none",
                                 allow_plaintext_backend="yes")


def reply(f):
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return lines


# fd 3 under systemd-socket-activate, TLS from the first byte.
peer = gateway.ScriptedPeer(gateway.smtp_backend)
gw = gateway.Gateway("mailgate-smtps", base, settings(peer.port),
                     inetd=False).start()
ctx = mailstack.client_context(certdir)
try:
    with ctx.wrap_socket(gw.connect(), server_hostname="localhost") as s:
        f = s.makefile("rb")
        greeting = reply(f)
        t.ok(greeting[0].startswith(b"220 "), "greeting over TLS on fd 3") \
            or t.diag(repr(greeting))
        s.sendall(b"EHLO client\r\n")
        t.ok(reply(f)[-1].startswith(b"250 "), "EHLO answered")
        s.sendall(b"QUIT\r\n")
        t.ok(reply(f)[0].startswith(b"221 "), "QUIT answered")
except (OSError, ValueError) as e:
    t.ok(False, "session on fd 3: %r" % e)
    t.skip("no session", 2)
end = gw.last_summary()
t.is_(end.get("status"), "0", "summary: status=0") or t.diag(gw.log())
t.is_(end.get("role"), "smtps", "summary: role=smtps")
t.ok(end.get("client", "").startswith("127.0.0.1:"),
     "summary names the client from the socket on fd 3") or t.diag(repr(end))
gw.stop()
peer.stop()

# LISTEN_FDS for another process: stdin and stdout are the client.
peer = gateway.ScriptedPeer(gateway.smtp_backend)
argv = [os.path.join(gateway.TOP, "mailgate-smtp-starttls"), "-e"]
for k, v in settings(peer.port).items():
    argv += ["-o", "%s=%s" % (k, v)]
argv += ["-o", "allow_plaintext_clients=yes"]
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
p = subprocess.run(argv, input=b"EHLO c\r\nQUIT\r\n", capture_output=True,
                   env=env, timeout=30)
peer.stop()
t.is_(p.returncode, 0, "LISTEN_PID of another process: exit status 0") or \
    t.diag(p.stderr.decode(errors="replace"))
t.ok(b"\r\n221 " in p.stdout, "the session ran on stdin and stdout") or \
    t.diag(repr(p.stdout))


def with_listen(pid_expr, fds):
    """The piped session with LISTEN_PID set by the shell that execs the
    gateway, so that $$ is the gateway's own PID."""
    peer = gateway.ScriptedPeer(gateway.smtp_backend)
    args = argv[:]
    for i, a in enumerate(args):
        if a.startswith("smtp.port="):
            args[i] = "smtp.port=%d" % peer.port
    script = 'LISTEN_PID=%s LISTEN_FDS=%s; export LISTEN_PID LISTEN_FDS; ' \
        'exec "$@"' % (pid_expr, fds)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LISTEN_")}
    p = subprocess.run(["sh", "-c", script, "sh"] + args,
                       input=b"EHLO c\r\nQUIT\r\n", capture_output=True,
                       env=env, timeout=30)
    peer.stop()
    return p


# LISTEN_PID with a sign in front is not a PID: ignored.
p = with_listen("+$$", "1")
t.is_(p.returncode, 0, "LISTEN_PID=+PID: not ours, exit status 0") or \
    t.diag(p.stderr.decode(errors="replace"))
t.ok(b"\r\n221 " in p.stdout, "LISTEN_PID=+PID: stdin and stdout used")

# Ours, but two sockets: a unit with two Listen lines, refused.
p = with_listen("$$", "2")
t.is_(p.returncode, 100, "LISTEN_FDS=2 for us: exit status 100")
t.ok(b"LISTEN_FDS=2: expected exactly one socket" in p.stderr,
     "LISTEN_FDS=2: the error says why") or t.diag(
    p.stderr.decode(errors="replace"))
t.is_(p.stdout, b"", "LISTEN_FDS=2: nothing sent to stdout")
t.done()
