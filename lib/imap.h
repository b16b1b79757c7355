/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_IMAP_H
#define MAILGATE_IMAP_H

#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
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

#endif
