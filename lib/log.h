/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_LOG_H
#define MAILGATE_LOG_H

#include <stddef.h>
#include <syslog.h>

#include "cfg.h"

/*
 * Logging: one event per line, key=value fields, "conn=ID" first on
 * every line once log_set_conn() has been called.  Lines go to the
 * journal, to syslog (facility mail) or to stderr, never to a
 * descriptor that is the client's socket.
 *
 * Before the configuration is read, log_open() picks the journal or
 * syslog; log_set_dest() changes it once the configuration or the
 * command line says otherwise.
 */

void log_open(const char *prog);
void log_set_dest(enum cfg_log dest);
void log_set_verbose(int level);
int log_verbose(void);
void log_set_conn(const char *id);

/* One line at priority prio (LOG_ERR, LOG_WARNING, LOG_INFO,
 * LOG_DEBUG).  LOG_DEBUG lines appear only with -v. */
void log_msg(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A protocol line for the -vv trace: dir is "C:" or "S:" or "B:" ...;
 * the line is made printable and cut. */
void log_trace(const char *dir, const char *line, size_t len);

/* Copy at most srclen bytes of peer text into dst (dstlen >= 1) as
 * printable ASCII: control and non-ASCII bytes become '?', '"' and
 * '\\' become '\'', the result is cut with "..." to fit.  CR and LF at
 * the end are dropped.  Returns dst. */
char *log_printable(char *dst, size_t dstlen, const char *src,
    size_t srclen);

/* Say something to a human at a terminal or in a script: to stderr if
 * stderr is not a socket (under inetd it is the client's), and to the
 * log in any case.  For usage and configuration errors. */
void log_user(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
