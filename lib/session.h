/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_SESSION_H
#define MAILGATE_SESSION_H

#include <stdint.h>

#include "cfg.h"
#include "io.h"

/*
 * One client connection: both legs and what the summary line reports.
 * The protocol modules fill it; gateway.c logs it once at the end.
 */

enum session_role {
	ROLE_SMTP_STARTTLS = 0,
	ROLE_SMTPS,
	ROLE_IMAP_STARTTLS,
	ROLE_IMAPS
};

enum session_login {
	LOGIN_NONE = 0,		/* no attempt seen */
	LOGIN_OK,
	LOGIN_FAILED,		/* attempts seen, none succeeded */
	LOGIN_UNKNOWN		/* relayed opaquely before an outcome */
};

/* What the client is told, in its protocol's words, when the session
 * ends on the client's side: complete lines ending in CRLF. */
struct session_words {
	const char *too_many_errors;
	const char *line_too_long;
	const char *timeout;
	const char *shutdown;
};

struct session {
	char id[16];
	enum session_role role;
	enum cfg_proto proto;
	const struct cfg *cfg;
	const struct cfg_backend *be;
	const struct session_words *words;	/* set by the protocol */
	char client_addr[64];
	struct io client;
	struct io backend;
	int backend_up;			/* verified (or allowed plaintext) */
	char client_tls[64];		/* "TLS1.3/AES-256-GCM" or "none" */
	char backend_tls[64];
	const char *verify;		/* "ok", "failed", "none", "-" */
	enum session_login login;
	unsigned errors;		/* protocol errors so far */
	int64_t start;			/* clock_ms() at accept */
	int64_t tls_deadline;		/* client must reach TLS by then */
	int status;			/* exit status, EXIT_* */
	char reason[200];		/* why it ended */
};

/* Record why the session ends, with exit status; the first call wins.
 * Returns -1 so that callers can "return session_fail(...)". */
int session_fail(struct session *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a normal end ("client quit", "backend closed"). */
void session_done(struct session *s, const char *reason);

/* The summary line. */
void session_log_end(struct session *s);

const char *session_login_name(enum session_login l);

/* Read one client line (see io_line): its length, 0 at a clean end
 * (recorded as "client closed"), or -1 with the failure recorded and
 * the client told why where s->words has a line for it. */
ssize_t session_client_line(struct session *s, int64_t deadline);

/* Count a protocol error; past cfg->max_errors the client is told and
 * the session fails (-1). */
int session_count_error(struct session *s);

/* Write a line of our own to the client, best effort, traced. */
void session_tell(struct session *s, const char *line);

/* TLS toward the client, finished by s->tls_deadline; on failure the
 * reason is recorded (EXIT_CLIENT). */
int session_client_tls(struct session *s);

/* After our go-ahead to the client's STARTTLS: discard what the client
 * sent after it in plaintext (logged), then session_client_tls(). */
int session_client_starttls(struct session *s);

/* Connect the backend leg (s->backend set up, plaintext so far); on
 * failure the reason is recorded (EXIT_TEMP) and -1 returned.  Logs
 * the per-connection warning for a plaintext backend. */
int session_backend_connect(struct session *s);

/* TLS toward the backend with verification, by deadline; records
 * s->verify and s->backend_tls, or the failure (EXIT_TEMP). */
int session_backend_tls(struct session *s, int64_t deadline);

/* Wipe both legs' buffers and close TLS. */
void session_close(struct session *s);

#endif
