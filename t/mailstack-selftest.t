#!/usr/bin/python3
"""Self-test of the test fixtures: real Postfix and Dovecot, no gateway."""

import imaplib
import os
import smtplib
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailstack as ms  # noqa: E402

HOST = "127.0.0.1"


def make_message(token):
    """A CRLF message whose body has a dot line and trailing blanks."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: selftest %s\r\n"
            "Message-ID: <%s@example.test>\r\n\r\n"
            % (ms.ALICE, ms.ALICE, token, token))
    body = ("Hello %s\r\n.leading dot\r\n..two dots\r\n.\r\n"
            "trailing blanks   \r\n\r\nend\r\n" % token)
    return head.encode(), body.encode()


def send_smtp(t, smtp, token, label):
    head, body = make_message(token)
    code, _ = ms.smtp_auth_plain(smtp, ms.ALICE, ms.ALICE_PW)
    t.is_(code, 235, label + ": AUTH PLAIN with the odd password")
    refused = smtp.sendmail(ms.ALICE, [ms.ALICE], head + body)
    t.is_(refused, {}, label + ": message accepted")
    smtp.quit()
    return body


def test_submission(t, postfix, ctx, token):
    smtp = smtplib.SMTP(HOST, postfix.submission_port, timeout=10)
    smtp.ehlo("client.example.test")
    t.ok(smtp.has_extn("starttls"), "submission offers STARTTLS")
    t.ok(not smtp.has_extn("auth"), "no AUTH before TLS")
    code, _ = ms.smtp_auth_plain(smtp, ms.ALICE, ms.ALICE_PW)
    t.is_(code, 530, "AUTH before TLS refused")
    smtp.starttls(context=ctx)
    smtp.ehlo("client.example.test")
    t.ok(smtp.has_extn("auth"), "AUTH offered after STARTTLS")
    return send_smtp(t, smtp, token, "submission")


def test_submissions(t, postfix, ctx, token):
    smtp = smtplib.SMTP_SSL(HOST, postfix.submissions_port,
                            context=ctx, timeout=10)
    smtp.ehlo("client.example.test")
    return send_smtp(t, smtp, token, "submissions")


def check_delivery(t, dovecot, token, body, label):
    msgs = ms.wait_for_mail(dovecot, ms.ALICE, 10,
                            match=token.encode())
    t.is_(len(msgs), 1, label + ": delivered to alice's Maildir")
    got = ms.message_body(msgs[0]) if msgs else None
    t.is_(got, body, label + ": body byte-identical")


def fetch_body(imap, token):
    imap.select("INBOX", readonly=True)
    typ, data = imap.search(None, "SUBJECT", token)
    nums = data[0].split()
    if typ != "OK" or len(nums) != 1:
        return None
    typ, data = imap.fetch(nums[0], "(BODY.PEEK[TEXT])")
    return data[0][1] if typ == "OK" else None


def test_imap_starttls(t, dovecot, ctx, token, body):
    imap = ms.IMAP4From(HOST, dovecot.imap_port, source="127.0.0.2")
    caps = imap.capabilities
    t.ok("STARTTLS" in caps and "LOGINDISABLED" in caps,
         "IMAP offers STARTTLS and LOGINDISABLED before TLS")
    typ, _ = ms.imap_login_literal(imap, ms.ALICE, ms.ALICE_PW)
    t.is_(typ, "NO", "IMAP LOGIN before TLS refused")
    imap.starttls(ssl_context=ctx)
    typ, _ = ms.imap_login_literal(imap, ms.ALICE, ms.ALICE_PW)
    t.is_(typ, "OK", "IMAP STARTTLS: LOGIN with literal password")
    t.is_(fetch_body(imap, token), body, "IMAP STARTTLS: FETCH body")
    imap.logout()


def test_imaps(t, dovecot, ctx, token, body):
    imap = imaplib.IMAP4_SSL(HOST, dovecot.imaps_port, ssl_context=ctx,
                             timeout=10)
    typ, _ = ms.imap_auth_plain(imap, ms.ALICE, ms.ALICE_PW)
    t.is_(typ, "OK", "IMAPS: AUTHENTICATE PLAIN")
    t.is_(fetch_body(imap, token), body, "IMAPS: FETCH body")
    imap.logout()


def test_swaks(t, postfix, dovecot, certdir, token):
    cmd = ["swaks", "--silent", "2", "--server", HOST,
           "--port", str(postfix.submission_port), "--tls",
           "--tls-verify", "--tls-ca-path",
           os.path.join(certdir, "ca.pem"),
           "--ehlo", "client.example.test", "--auth", "PLAIN",
           "--auth-user", ms.ALICE, "--auth-password", ms.ALICE_PW,
           "--from", ms.ALICE, "--to", ms.ALICE,
           "--header", "Subject: selftest " + token]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    if not t.is_(p.returncode, 0, "swaks over submission"):
        t.diag(p.stdout.decode(errors="replace"))
        t.diag(p.stderr.decode(errors="replace"))
    msgs = ms.wait_for_mail(dovecot, ms.ALICE, 10, match=token.encode())
    t.is_(len(msgs), 1, "swaks message delivered")


def start_servers(t, scratch, certdir):
    started = time.monotonic()
    dovecot = ms.Dovecot(os.path.join(scratch, "dovecot"), certdir)
    dovecot.start()
    mid = time.monotonic()
    postfix = ms.Postfix(os.path.join(scratch, "postfix"), certdir,
                         dovecot)
    postfix.start()
    done = time.monotonic()
    t.note("start-up: dovecot %.3f s, postfix %.3f s, total %.3f s"
           % (mid - started, done - mid, done - started))
    return dovecot, postfix


def main():
    t = ms.Tap()
    if os.geteuid() != 0:
        t.skip_all("needs root to run Postfix")
    t.plan(20)
    scratch = ms.scratch_dir()
    certdir = ms.certs()
    ctx = ms.client_context(certdir)
    dovecot, postfix = start_servers(t, scratch, certdir)
    tokens = [uuid.uuid4().hex for _ in range(3)]
    body = test_submission(t, postfix, ctx, tokens[0])
    check_delivery(t, dovecot, tokens[0], body, "submission")
    body2 = test_submissions(t, postfix, ctx, tokens[1])
    check_delivery(t, dovecot, tokens[1], body2, "submissions")
    test_imap_starttls(t, dovecot, ctx, tokens[0], body)
    test_imaps(t, dovecot, ctx, tokens[1], body2)
    test_swaks(t, postfix, dovecot, certdir, tokens[2])
    t.done()


main()
