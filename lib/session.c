/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "exitcode.h"
#include "log.h"
#include "net.h"
#include "resume.h"
#include "session.h"
#include "tls.h"

static const char *const role_names[] = {
	[ROLE_SMTP_STARTTLS] = "smtp-starttls",
	[ROLE_SMTPS] = "smtps",
	[ROLE_IMAP_STARTTLS] = "imap-starttls",
	[ROLE_IMAPS] = "imaps",
};

const char *
session_login_name(enum session_login l)
{
	switch (l) {
	case LOGIN_OK:
		return "ok";
	case LOGIN_FAILED:
		return "failed";
	case LOGIN_UNKNOWN:
		return "unknown";
	default:
		return "none";
	}
}

int
session_fail(struct session *s, int status, const char *fmt, ...)
{
	va_list ap;

	if (s->reason[0] != '\0')
		return -1;

	/* Whatever failed after SIGTERM failed because of it. */
	if (io_stop) {
		s->status = EXIT_TEMP;
		snprintf(s->reason, sizeof(s->reason), "terminated");
		return -1;
	}
	s->status = status;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	return -1;
}

void
session_done(struct session *s, const char *reason)
{
	if (s->reason[0] == '\0')
		snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

void
session_log_end(struct session *s)
{
	int64_t ms = clock_ms() - s->start;
	const char *host = s->be && s->be->host ? s->be->host : "-";
	int v6 = strchr(host, ':') != NULL;

	log_msg(s->status == 0 ? LOG_INFO : LOG_WARNING,
	    "event=end role=%s client=%s backend=%s%s%s:%u client_tls=%s "
	    "backend_tls=%s verify=%s login=%s in=%llu out=%llu "
	    "duration=%lld.%03lld status=%d reason=\"%s\"",
	    role_names[s->role], s->client_addr, v6 ? "[" : "", host,
	    v6 ? "]" : "", s->be ? s->be->port : 0, s->client_tls, s->backend_tls,
	    s->verify, session_login_name(s->login),
	    (unsigned long long)s->client.nin,
	    (unsigned long long)s->client.nout,
	    (long long)(ms / 1000), (long long)(ms % 1000), s->status,
	    s->reason);
}

void
session_close(struct session *s)
{
	struct io *legs[2] = { &s->client, &s->backend };
	int i;

	for (i = 0; i < 2; i++) {
		io_discard(legs[i]);
		if (legs[i]->tls == NULL)
			continue;
		if (legs[i]->wshut)
			tls_free(legs[i]->tls);
		else
			tls_close(legs[i]->tls);
		legs[i]->tls = NULL;
	}

	/* The backend socket is ours; the client's descriptors belong to
	 * whoever started us. */
	if (s->backend.rfd >= 0) {
		close(s->backend.rfd);
		s->backend.rfd = s->backend.wfd = -1;
	}
}

int
session_client_tls(struct session *s)
{
	char why[300];

	if (tls_server_session(&s->client.tls, s->client.rfd,
	    s->client.wfd, why, sizeof(why)) == -1 ||
	    tls_handshake(s->client.tls, s->tls_deadline, why,
	    sizeof(why)) == -1)
		return session_fail(s, EXIT_CLIENT,
		    "client TLS handshake failed: %s", why);
	tls_describe(s->client.tls, s->client_tls, sizeof(s->client_tls));
	return 0;
}

int
session_client_starttls(struct session *s)
{
	/* Commands pipelined behind STARTTLS came in plaintext and must
	 * not run inside TLS (RFC 3207 section 4.2, RFC 9051 section
	 * 6.2.1; CVE-2011-0411 and its kin). */
	if (s->client.len > 0)
		log_msg(LOG_WARNING, "event=discard bytes=%zu "
		    "what=\"plaintext after STARTTLS\"", s->client.len);
	io_discard(&s->client);
	return session_client_tls(s);
}

int
session_backend_connect(struct session *s)
{
	int64_t deadline = clock_ms() + (int64_t)s->cfg->connect_timeout *
	    1000;
	char why[300];
	int fd;

	fd = net_connect(s->be->host, s->be->port, deadline, why,
	    sizeof(why));
	if (fd == -1)
		return session_fail(s, EXIT_TEMP, "%s", why);
	io_init(&s->backend, fd, fd, "backend");
	net_quickack(fd);
	if (s->be->security == CFG_SEC_NONE) {
		log_msg(LOG_WARNING, "event=warning backend leg is "
		    "plaintext (allow_plaintext_backend, for tests only)");
		s->verify = "none";
	}
	return 0;
}

int
session_backend_tls(struct session *s, int64_t deadline)
{
	char why[300];

	if (tls_backend_session(&s->backend.tls, s->be->host,
	    s->backend.rfd, why, sizeof(why)) == -1)
		return session_fail(s, EXIT_TEMP, "backend TLS: %s", why);
	if (resume_load(s->backend.tls) == -1) {
		/* GnuTLS may have taken part of it: start clean. */
		tls_free(s->backend.tls);
		s->backend.tls = NULL;
		if (tls_backend_session(&s->backend.tls, s->be->host,
		    s->backend.rfd, why, sizeof(why)) == -1)
			return session_fail(s, EXIT_TEMP, "backend TLS: %s",
			    why);
	}
	resume_watch(s->backend.tls);
	if (tls_handshake(s->backend.tls, deadline, why, sizeof(why)) == -1) {
		if (strncmp(why, "certificate", 11) == 0)
			s->verify = "failed";
		return session_fail(s, EXIT_TEMP, "backend TLS: %s", why);
	}
	/* A resumed session was verified in full by an earlier
	 * instance (resume.h); its certificate was not sent again. */
	s->verify = gnutls_session_is_resumed(s->backend.tls) ? "resumed" :
	    "ok";
	resume_handshake_done(s->backend.tls);
	tls_describe(s->backend.tls, s->backend_tls, sizeof(s->backend_tls));

	/* The server's first reply may follow its last handshake record
	 * in a separate small write. */
	net_quickack(s->backend.rfd);
	return 0;
}

void
session_tell(struct session *s, const char *line)
{
	size_t n = strlen(line);

	log_trace("S:", line, n);
	(void)io_write(&s->client, line, n, clock_ms() + 10000);
}

int
session_count_error(struct session *s)
{
	if (++s->errors < s->cfg->max_errors)
		return 0;
	session_tell(s, s->words->too_many_errors);
	return session_fail(s, EXIT_CLIENT, "too many errors");
}

ssize_t
session_client_line(struct session *s, int64_t deadline)
{
	ssize_t n = io_line(&s->client, deadline);

	if (n == 0) {
		session_done(s, "client closed");
		return 0;
	}
	if (n > 0)
		return n;
	if (strcmp(s->client.why, "line too long") == 0)
		session_tell(s, s->words->line_too_long);
	else if (strcmp(s->client.why, "timeout") == 0)
		session_tell(s, s->words->timeout);
	else if (io_stop)
		session_tell(s, s->words->shutdown);
	return session_fail(s, EXIT_CLIENT, "client: %s", s->client.why);
}
