/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_SMTP_H
#define MAILGATE_SMTP_H

#include <stddef.h>

#include "session.h"

/*
 * The SMTP side: the dialogue before TLS on 587 (RFC 3207), the
 * backend leg with its own STARTTLS, the client's EHLO and AUTH
 * (RFC 4954) passed through with the EHLO reply filtered, then the
 * opaque relay from the first mail transaction on.
 *
 * smtp_run() returns 0 after a normal end and -1 after a failure; in
 * both cases the reason and the exit status are in the session.
 */
int smtp_run(struct session *s);

/*
 * Filter a complete EHLO reply (in, inlen: "250-..." lines ending in
 * CRLF or LF, the last "250 ...") into out: drops STARTTLS and SASL
 * mechanisms ending in -PLUS (channel binding cannot survive a gateway),
 * drops an AUTH line left empty, optionally adds STARTTLS, and rebuilds
 * the continuation marks so that exactly the last line is final.
 * Returns the length written, or 0 if in is not a well-formed 250 reply
 * or out is too small.
 */
size_t smtp_ehlo_filter(const char *in, size_t inlen, char *out,
    size_t outlen, int add_starttls);

/*
 * Whether a line (p, n, with its line end) can be part of a reply: three
 * digits, then '-', ' ' or the line end.  With code other than 0 the
 * digits must also be code, so that every line of a multi-line reply
 * agrees with the first.  Returns 1 or 0; reads nothing past p[n - 1].
 */
int smtp_reply_line_ok(const char *p, size_t n, int code);

#endif
