/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_IMAP_H
#define MAILGATE_IMAP_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

/*
 * The IMAP side: the dialogue before TLS on 143 (RFC 9051 section
 * 6.2.1, RFC 2595), the backend leg with its own STARTTLS, the login
 * phase with capabilities filtered in every place they appear, then the
 * opaque relay once a login succeeded.
 *
 * imap_run() returns 0 after a normal end and -1 after a failure; in
 * both cases the reason and the exit status are in the session.
 */
int imap_run(struct session *s);

/* Largest literal count accepted: RFC 3501 makes number a 32-bit
 * value, and nothing before login needs more. */
#define IMAP_LITERAL_MAX	4294967295ULL

/*
 * Whether a line (len bytes, with or without its CRLF or LF) ends in a
 * literal marker: "{N}" (synchronising, *sync = 1) or "{N+}"
 * (non-synchronising, RFC 7888, *sync = 0), with N in *count.
 * Returns 1 if it does, 0 if the line does not end in '}' after a '{',
 * and -1 if it does but the marker is not a valid literal: empty, a
 * sign or space, any non-digit, or N above IMAP_LITERAL_MAX.  A peer
 * may read such a marker as a literal of some size, so a caller must
 * never treat -1 as plain text.
 */
int imap_literal_at_end(const char *line, size_t len, uint64_t *count,
    int *sync);

/*
 * Copy one response line (in, len) into out, filtering its capability
 * list if it has one: "* CAPABILITY ...", or a "[CAPABILITY ...]"
 * response code in a status response (OK, NO, BAD, PREAUTH, BYE,
 * tagged or not).  STARTTLS, LOGINDISABLED and AUTH=<mech>-PLUS are
 * removed, whatever their case; everything else keeps its order and
 * spelling, one space apart.  Other lines are copied unchanged.
 * Returns the length written, or 0 if out is too small.
 */
size_t imap_filter_caps(const char *in, size_t len, char *out,
    size_t outlen);

#endif
