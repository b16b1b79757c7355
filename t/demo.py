#!/usr/bin/python3
"""make demo: the four gateways in front of a private Postfix and Dovecot.

Starts Dovecot (IMAP, LMTP, SASL) and Postfix (submission) on loopback
ports from a scratch directory, puts each gateway in front of them
under systemd-socket-activate, submits a real message through each SMTP
gateway with swaks, reads it back through each IMAP gateway with curl
and Python's imaplib, and prints the gateways' summary log lines.
"""

import imaplib
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailstack  # noqa: E402
from gateway import Gateway, smtp_settings, imap_settings  # noqa: E402


def banner(text):
    print("\n==== %s" % text, flush=True)


def start_gateways(work, certs, dovecot, postfix):
    plan = [
        ("mailgate-smtp-starttls", smtp_settings, postfix.submission_port,
         "starttls"),
        ("mailgate-smtps", smtp_settings, postfix.submissions_port, "tls"),
        ("mailgate-imap-starttls", imap_settings, dovecot.imap_port,
         "starttls"),
        ("mailgate-imaps", imap_settings, dovecot.imaps_port, "tls"),
    ]
    gws = {}
    for prog, settings, port, security in plan:
        gws[prog] = Gateway(prog, work, settings(
            certs, "localhost", port, security), verbose=0).start()
        print("%-24s 127.0.0.1:%d -> localhost:%d (%s)"
              % (prog, gws[prog].port, port, security))
    return gws


def submit(gw, certs, implicit, subject):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % gw.port,
           "--tlsc" if implicit else "--tls",
           "--tls-verify", "--tls-ca-path", os.path.join(certs, "ca.pem"),
           "--auth", "PLAIN", "--auth-user", mailstack.ALICE,
           "--auth-password", mailstack.ALICE_PW, "--auth-hide-password",
           "--from", mailstack.ALICE, "--to", mailstack.ALICE,
           "--h-Subject", subject, "--body", "Sent through %s." % gw.prog]
    banner("swaks through %s" % gw.prog)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    print(r.stdout)
    if r.returncode != 0:
        raise SystemExit("swaks failed with status %d" % r.returncode)


def read_with_curl(gw, certs, uid):
    banner("curl imaps:// through %s, message UID %d" % (gw.prog, uid))
    url = "imaps://localhost:%d/INBOX;UID=%d" % (gw.port, uid)
    r = subprocess.run(
        ["curl", "-sS", "--cacert", os.path.join(certs, "ca.pem"),
         "--resolve", "localhost:%d:127.0.0.1" % gw.port,
         "--user", "%s:%s" % (mailstack.ALICE, mailstack.ALICE_PW), url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60)
    print(r.stdout)
    if r.returncode != 0:
        raise SystemExit("curl failed with status %d" % r.returncode)


def read_with_imaplib(gw, certs):
    banner("imaplib STARTTLS through %s" % gw.prog)
    ctx = mailstack.client_context(certs)
    imap = imaplib.IMAP4("127.0.0.1", gw.port, timeout=30)
    imap.starttls(ssl_context=ctx)
    typ, _ = mailstack.imap_login_literal(imap, mailstack.ALICE,
                                          mailstack.ALICE_PW)
    print("LOGIN:", typ)
    typ, data = imap.select("INBOX")
    print("SELECT INBOX:", typ, data[0].decode(), "messages")
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    for part in data:
        if isinstance(part, tuple):
            print("  ", part[1].decode().strip())
    imap.logout()


def main():
    work = mailstack.scratch_dir("demo")
    certs = mailstack.certs()
    banner("starting Dovecot and Postfix under %s" % work)
    dovecot, postfix = mailstack.start_stack(work, certs)
    gws = start_gateways(work, certs, dovecot, postfix)

    submit(gws["mailgate-smtp-starttls"], certs, False, "via 587 gateway")
    submit(gws["mailgate-smtps"], certs, True, "via 465 gateway")
    found = mailstack.wait_for_mail(dovecot, mailstack.ALICE, count=2)
    banner("delivered into %s" % dovecot.maildir(mailstack.ALICE))
    print("%d message(s) in the Maildir" % len(found))
    if len(found) < 2:
        raise SystemExit("the messages did not arrive")

    read_with_curl(gws["mailgate-imaps"], certs, 1)
    read_with_imaplib(gws["mailgate-imap-starttls"], certs)

    banner("summary log lines")
    for gw in gws.values():
        gw.wait_summaries(1)
        for line in gw.log().splitlines():
            if "event=end" in line:
                print(line)
    mailstack.stop_all()
    os.environ["MG_KEEP"] = os.environ.get("MG_KEEP", "")
    print("\ndemo ok")


if __name__ == "__main__":
    main()
