/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_RELAY_H
#define MAILGATE_RELAY_H

#include "session.h"

/*
 * Pass bytes unchanged both ways between s->client and s->backend, the
 * bytes already buffered on either leg first, until the backend ends
 * (then the client is sent what remains and closed) or a leg fails.
 * When the client ends its side, the backend keeps its input until it
 * closes or has been quiet for two seconds, so that it still answers
 * what it was sent (mail servers drop unfinished commands when their
 * input ends); then both are ended.  Each direction holds
 * at most one buffer; a side that does not read stops the other from
 * being read (backpressure).  idle_timeout is in seconds.
 *
 * If the backend closes with bytes it was sent and has not answered
 * since, lost (a complete line, or NULL) goes to the client and the
 * session fails: no success is implied for a cut-off command.
 *
 * Returns 0 after a normal end (session_done called) or -1 after a
 * failure (session_fail called).
 */
int relay_run(struct session *s, unsigned idle_timeout, const char *lost);

#endif
