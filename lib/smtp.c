/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "exitcode.h"
#include "log.h"
#include "net.h"
#include "relay.h"
#include "smtp.h"

/* A reply longer than this is refused (and documented in the man
 * pages): EHLO replies are a few hundred bytes, RFC 5321 limits a reply
 * line to 512, and a reply is read whole before it is passed on. */
#define SMTP_REPLY_MAX	32768
#define SMTP_REPLY_LINES 500

struct smtp_reply {
	int code;
	size_t len;
	char text[SMTP_REPLY_MAX];
};

enum smtp_verb {
	SMTP_OTHER = 0,
	SMTP_EHLO,
	SMTP_HELO,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_NOOP,
	SMTP_RSET,
	SMTP_QUIT
};

static const struct {
	const char *name;
	enum smtp_verb verb;
} smtp_verbs[] = {
	{ "EHLO", SMTP_EHLO }, { "HELO", SMTP_HELO },
	{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
	{ "NOOP", SMTP_NOOP }, { "RSET", SMTP_RSET },
	{ "QUIT", SMTP_QUIT },
};

/* The verb of a command line, and whether anything follows it. */
static enum smtp_verb
smtp_parse_verb(const char *line, size_t len, int *has_args)
{
	size_t n = 0, i;

	while (n < len && isalpha((unsigned char)line[n]))
		n++;
	*has_args = n < len && line[n] == ' ' && n + 1 < len &&
	    line[n + 1] != '\r' && line[n + 1] != '\n';
	if (n < len && line[n] != ' ' && line[n] != '\r' && line[n] != '\n')
		return SMTP_OTHER;
	for (i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++)
		if (strlen(smtp_verbs[i].name) == n &&
		    strncasecmp(line, smtp_verbs[i].name, n) == 0)
			return smtp_verbs[i].verb;
	return SMTP_OTHER;
}

/* Trace a client line; an AUTH line shows its mechanism only, and a
 * SASL response line (hide) nothing at all. */
static void
smtp_trace_client(const char *line, size_t n, int hide)
{
	char text[64];
	size_t k;

	if (hide) {
		log_trace("C:", "[hidden]", 8);
		return;
	}
	if (n > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		for (k = 5; k < n && k < 40 && line[k] != ' ' &&
		    line[k] != '\r' && line[k] != '\n'; k++)
			;
		snprintf(text, sizeof(text), "%.*s [hidden]", (int)k, line);
		log_trace("C:", text, strlen(text));
		return;
	}
	log_trace("C:", line, n);
}

static int64_t
smtp_deadline(unsigned seconds)
{
	return clock_ms() + (int64_t)seconds * 1000;
}

static int smtp_say(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Send our own reply to the client. */
static int
smtp_say(struct session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	memcpy(line + n, "\r\n", 2);
	log_trace("S:", line, n);
	if (io_write(&s->client, line, n + 2,
	    smtp_deadline(s->be->login_timeout)) == -1)
		return session_fail(s, EXIT_CLIENT, "client: %s",
		    s->client.why);
	return 0;
}

/* A reply line is three digits, then '-', ' ' or the line end. */
int
smtp_reply_line_ok(const char *p, size_t n, int code)
{
	int c;

	if (n < 4 || !isdigit((unsigned char)p[0]) ||
	    !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
		return 0;
	c = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (code != 0 && c != code)
		return 0;
	return p[3] == '-' || p[3] == ' ' || p[3] == '\r' || p[3] == '\n';
}

/* Read one whole reply, possibly multi-line, from the backend. */
static int
smtp_read_reply(struct session *s, struct smtp_reply *r, int64_t deadline)
{
	struct io *b = &s->backend;
	int lines = 0;
	ssize_t n;
	char *p;

	r->code = 0;
	r->len = 0;
	for (;;) {
		n = io_line(b, deadline);
		if (n <= 0)
			return session_fail(s, EXIT_TEMP, "backend: %s",
			    n == 0 ? "closed" : b->why);
		p = (char *)b->buf + b->off;
		if (!smtp_reply_line_ok(p, n, r->code))
			return session_fail(s, EXIT_TEMP,
			    "backend: malformed reply");
		if (r->len + n > sizeof(r->text) ||
		    ++lines > SMTP_REPLY_LINES)
			return session_fail(s, EXIT_TEMP,
			    "backend: reply longer than %d lines or %d "
			    "bytes", SMTP_REPLY_LINES, SMTP_REPLY_MAX);
		r->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 +
		    (p[2] - '0');
		memcpy(r->text + r->len, p, n);
		log_trace("B:", p, n);
		r->len += n;
		io_consume(b, n);
		if (r->text[r->len - n + 3] != '-')
			return 0;
	}
}

static int
smtp_send_backend(struct session *s, const char *line, size_t len)
{
	if (io_write(&s->backend, line, len,
	    smtp_deadline(s->be->login_timeout)) == -1)
		return session_fail(s, EXIT_TEMP, "backend: %s",
		    s->backend.why);
	return 0;
}

/* Whether the reply lists keyword as an EHLO extension. */
static int
smtp_has_keyword(const struct smtp_reply *r, const char *keyword)
{
	size_t klen = strlen(keyword), i = 0;
	const char *line, *end;

	while (i < r->len) {
		line = r->text + i;
		end = memchr(line, '\n', r->len - i);
		i = end - r->text + 1;
		if (end - line >= (ptrdiff_t)(4 + klen) &&
		    strncasecmp(line + 4, keyword, klen) == 0 &&
		    (line[4 + klen] == '\r' || line[4 + klen] == '\n' ||
		    line[4 + klen] == ' '))
			return 1;
	}
	return 0;
}

/* Tell the client that the backend leg failed, in SMTP's words, and
 * record the full reason. */
static int
smtp_backend_fail(struct session *s, const char *tell, const char *why)
{
	session_fail(s, EXIT_TEMP, "%s", why);
	(void)smtp_say(s, "421 %s", io_stop ?
	    "4.3.2 Service shutting down" : tell);
	return -1;
}

/* The backend's STARTTLS dialogue before its handshake (RFC 3207). */
static int
smtp_backend_starttls(struct session *s, int64_t deadline)
{
	struct smtp_reply r;
	char ehlo[300];
	int n;

	n = snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", s->cfg->hostname);
	if (smtp_send_backend(s, ehlo, n) == -1 ||
	    smtp_read_reply(s, &r, deadline) == -1)
		return -1;

	/* No HELO fallback: a server that refuses EHLO cannot offer
	 * STARTTLS, and plaintext is never the answer. */
	if (r.code != 250 || !smtp_has_keyword(&r, "STARTTLS"))
		return session_fail(s, EXIT_TEMP,
		    "backend does not offer STARTTLS");
	net_quickack(s->backend.rfd);
	if (smtp_send_backend(s, "STARTTLS\r\n", 10) == -1 ||
	    smtp_read_reply(s, &r, deadline) == -1)
		return -1;
	if (r.code != 220)
		return session_fail(s, EXIT_TEMP,
		    "backend refused STARTTLS: %.3s", r.text);

	/* Bytes after the go-ahead would be read as if they came over
	 * TLS: a response injection (CVE-2011-0411 class). */
	if (s->backend.len > 0)
		return session_fail(s, EXIT_TEMP, "backend sent %zu bytes "
		    "after its STARTTLS go-ahead", s->backend.len);
	return 0;
}

/* Connect, secure and verify the backend leg, and read its greeting.
 * What it said before TLS is forgotten; the client's own EHLO brings
 * back the capabilities. */
static int
smtp_backend_open(struct session *s)
{
	struct smtp_reply r;
	int64_t deadline;

	if (session_backend_connect(s) == -1)
		return smtp_backend_fail(s, "4.4.1 Backend not reachable, "
		    "try again later", s->reason);
	deadline = smtp_deadline(s->cfg->handshake_timeout);

	if (s->be->security == CFG_SEC_TLS &&
	    session_backend_tls(s, deadline) == -1)
		return smtp_backend_fail(s, "4.7.5 Backend connection "
		    "could not be secured", s->reason);
	if (smtp_read_reply(s, &r, deadline) == -1)
		return smtp_backend_fail(s, "4.4.2 Backend not responding",
		    s->reason);
	if (r.code != 220)
		return smtp_backend_fail(s, "4.3.0 Backend refused the "
		    "connection", "backend greeting not 220");
	if (s->be->security == CFG_SEC_STARTTLS &&
	    (smtp_backend_starttls(s, deadline) == -1 ||
	    session_backend_tls(s, deadline) == -1))
		return smtp_backend_fail(s, "4.7.5 Backend connection "
		    "could not be secured", s->reason);
	s->backend_up = 1;
	return 0;
}

/* STARTTLS from the client: go ahead, forget the plaintext buffer, and
 * handshake before the deadline set at accept. */
static int
smtp_client_starttls(struct session *s)
{
	if (smtp_say(s, "220 2.0.0 Ready to start TLS") == -1)
		return -1;
	return session_client_starttls(s);
}

/* A refusal of ours before TLS, counted as an error. */
static int
smtp_refuse(struct session *s, const char *reply)
{
	if (smtp_say(s, "%s", reply) == -1)
		return -1;
	return session_count_error(s);
}

/* Our answer to one command before TLS.  1 once TLS is up, 0 to go
 * on, -1 to end (the session says whether normally). */
static int
smtp_answer_before_tls(struct session *s, enum smtp_verb verb,
    int has_args)
{
	switch (verb) {
	case SMTP_EHLO:
		if (!has_args)
			return smtp_refuse(s, "501 5.5.4 Syntax: EHLO hostname");
		return smtp_say(s, "250-%s\r\n250-ENHANCEDSTATUSCODES\r\n"
		    "250 STARTTLS", s->cfg->hostname);
	case SMTP_HELO:
		if (!has_args)
			return smtp_refuse(s, "501 5.5.4 Syntax: HELO hostname");
		return smtp_say(s, "250 %s", s->cfg->hostname);
	case SMTP_NOOP:
	case SMTP_RSET:
		return smtp_say(s, "250 2.0.0 OK");
	case SMTP_QUIT:
		(void)smtp_say(s, "221 2.0.0 Bye");
		session_done(s, "client quit before TLS");
		return -1;
	case SMTP_STARTTLS:
		if (has_args)
			return smtp_refuse(s, "501 5.5.4 No parameters "
			    "allowed");
		return smtp_client_starttls(s) == 0 ? 1 : -1;
	default:
		return smtp_refuse(s, "530 5.7.0 Must issue a STARTTLS "
		    "command first");
	}
}

/* Before TLS on 587 the client may only learn that STARTTLS exists,
 * start it, wait or leave; nothing reaches the backend.
 * Returns 1 once TLS is up, 0 if the client left, -1 on failure. */
static int
smtp_before_tls(struct session *s)
{
	enum smtp_verb verb;
	const char *line;
	int has_args, r;
	ssize_t n;

	for (;;) {
		n = session_client_line(s, s->tls_deadline);
		if (n <= 0)
			return (int)n;
		line = (const char *)s->client.buf + s->client.off;
		verb = smtp_parse_verb(line, n, &has_args);

		/* An unknown line before TLS may be a password that a
		 * client sends despite our 530 to its AUTH. */
		smtp_trace_client(line, n, verb == SMTP_OTHER);
		io_consume(&s->client, n);

		r = smtp_answer_before_tls(s, verb, has_args);
		if (r == 1)
			return 1;
		if (r == -1)
			return s->status == EXIT_OK ? 0 : -1;
	}
}

/* Forward one command line that is at the front of the client buffer
 * and consume it.  A login payload is traced as hidden. */
static int
smtp_forward_line(struct session *s, size_t n, int hide)
{
	const char *line = (const char *)s->client.buf + s->client.off;

	smtp_trace_client(line, n, hide);
	if (smtp_send_backend(s, line, n) == -1)
		return -1;
	io_consume(&s->client, n);
	return 0;
}

static int
smtp_send_reply(struct session *s, struct smtp_reply *r)
{
	log_trace("S:", r->text, r->len);
	if (io_write(&s->client, r->text, r->len,
	    smtp_deadline(s->be->login_timeout)) == -1)
		return session_fail(s, EXIT_CLIENT, "client: %s",
		    s->client.why);
	return 0;
}

/* EHLO or HELO: the backend answers; an EHLO reply is filtered. */
static int
smtp_ehlo(struct session *s, size_t n, enum smtp_verb verb)
{
	int64_t deadline = smtp_deadline(s->be->login_timeout);
	struct smtp_reply r, f;

	if (smtp_forward_line(s, n, 0) == -1 ||
	    smtp_read_reply(s, &r, deadline) == -1)
		return -1;
	if (verb == SMTP_EHLO && r.code == 250) {
		f.code = 250;
		f.len = smtp_ehlo_filter(r.text, r.len, f.text,
		    sizeof(f.text), s->client.tls == NULL);
		if (f.len == 0)
			return session_fail(s, EXIT_TEMP,
			    "backend: malformed EHLO reply");
		return smtp_send_reply(s, &f);
	}
	return smtp_send_reply(s, &r);
}

/* AUTH (RFC 4954): the client's lines and the backend's challenges
 * pass unchanged; only the final reply is looked at. */
static int
smtp_auth(struct session *s, size_t n)
{
	int64_t deadline = smtp_deadline(s->be->login_timeout);
	struct smtp_reply r;
	ssize_t len;
	int rc = -1;

	if (smtp_forward_line(s, n, 0) == -1)
		goto out;
	for (;;) {
		if (smtp_read_reply(s, &r, deadline) == -1 ||
		    smtp_send_reply(s, &r) == -1)
			goto out;
		if (r.code != 334)
			break;
		len = session_client_line(s, deadline);
		if (len <= 0 || smtp_forward_line(s, len, 1) == -1)
			goto out;
	}
	if (r.code >= 200 && r.code < 300)
		s->login = LOGIN_OK;
	else if (s->login != LOGIN_OK)
		s->login = LOGIN_FAILED;
	log_msg(LOG_DEBUG, "event=auth result=%s code=%d",
	    r.code / 100 == 2 ? "ok" : "failed", r.code);
	rc = 0;
out:
	explicit_bzero(&r, sizeof(r));
	return rc;
}

/* A command with a one-reply answer (NOOP, RSET) passed through. */
static int
smtp_simple(struct session *s, size_t n)
{
	struct smtp_reply r;

	if (smtp_forward_line(s, n, 0) == -1 ||
	    smtp_read_reply(s, &r, smtp_deadline(s->be->login_timeout))
	    == -1)
		return -1;
	return smtp_send_reply(s, &r);
}

/* The dialogue after TLS failed.  If the backend (or SIGTERM) was the
 * cause, the client still waits for a reply: give it one. */
static int
smtp_dialogue_failed(struct session *s)
{
	if (s->status == EXIT_TEMP)
		session_tell(s, io_stop ? s->words->shutdown :
		    "421 4.4.2 Backend connection lost\r\n");
	return -1;
}

/* After TLS (or with plaintext clients allowed): the client's EHLO and
 * AUTH go to the backend one at a time, and the first other command
 * starts the opaque relay.  Returns 0 or -1 like smtp_run(). */
static int
smtp_after_tls(struct session *s)
{
	enum smtp_verb verb;
	int has_args, r;
	ssize_t n;

	for (;;) {
		/* After a successful AUTH the client is logged in: it may
		 * wait as long as any idle client. */
		n = session_client_line(s, smtp_deadline(s->login == LOGIN_OK ?
		    s->be->idle_timeout : s->be->login_timeout));
		if (n <= 0)
			return (int)n;
		verb = smtp_parse_verb((const char *)s->client.buf +
		    s->client.off, n, &has_args);

		if (verb == SMTP_STARTTLS && s->client.tls == NULL) {
			io_consume(&s->client, n);
			r = smtp_client_starttls(s);
		} else if (verb == SMTP_STARTTLS) {
			io_consume(&s->client, n);
			r = smtp_say(s, "503 5.5.1 TLS already active");
		} else if (verb == SMTP_QUIT && !s->backend_up) {
			(void)smtp_say(s, "221 2.0.0 Bye");
			session_done(s, "client quit");
			return 0;
		} else if (!s->backend_up && smtp_backend_open(s) == -1) {
			return -1;
		} else if (verb == SMTP_EHLO || verb == SMTP_HELO) {
			r = smtp_ehlo(s, n, verb);
		} else if (verb == SMTP_AUTH) {
			r = smtp_auth(s, n);
		} else if (verb == SMTP_NOOP || verb == SMTP_RSET) {
			r = smtp_simple(s, n);
		} else {
			break;
		}
		if (r == -1)
			return smtp_dialogue_failed(s);
	}

	if (s->login == LOGIN_NONE)
		s->login = LOGIN_UNKNOWN;
	return relay_run(s, s->be->idle_timeout,
	    "421 4.4.2 Backend connection lost\r\n");
}

static const struct session_words smtp_words = {
	.too_many_errors = "421 4.7.0 Too many errors\r\n",
	.line_too_long = "500 5.5.2 Line too long\r\n",
	.timeout = "421 4.4.2 Timeout, closing connection\r\n",
	.shutdown = "421 4.3.2 Service shutting down\r\n",
};

int
smtp_run(struct session *s)
{
	int r;

	s->words = &smtp_words;
	if (s->role == ROLE_SMTPS) {
		if (session_client_tls(s) == -1)
			return -1;
	}

	if (smtp_say(s, "220 %s ESMTP mailgate", s->cfg->hostname) == -1)
		return -1;

	if (s->role == ROLE_SMTP_STARTTLS && !s->cfg->allow_plaintext_clients) {
		r = smtp_before_tls(s);
		if (r <= 0)
			return r;
	}
	return smtp_after_tls(s);
}

/* Append to out at *pos; -1 if it does not fit. */
static int
smtp_put(char *out, size_t outlen, size_t *pos, const char *p, size_t n)
{
	if (*pos + n > outlen)
		return -1;
	memcpy(out + *pos, p, n);
	*pos += n;
	return 0;
}

/* Channel-binding mechanisms (*-PLUS) bind to the TLS channel, which
 * differs on each side of the gateway: they cannot work through it. */
static int
smtp_mech_kept(const char *m, size_t len)
{
	return len > 0 && !(len > 5 &&
	    strncasecmp(m + len - 5, "-PLUS", 5) == 0);
}

/* Whether a mechanism of an AUTH line (p, n) survives the filter. */
static int
smtp_auth_keeps(const char *p, size_t n)
{
	size_t i, j;

	for (i = 5; i < n; i = j + 1) {
		for (j = i; j < n && p[j] != ' '; j++)
			;
		if (smtp_mech_kept(p + i, j - i))
			return 1;
	}
	return 0;
}

/* Put the AUTH line (p, n: "AUTH PLAIN ..." or "AUTH=...") without
 * channel-binding mechanisms; nothing at all if none is left. */
static int
smtp_put_auth(char *out, size_t outlen, size_t *pos, const char *p,
    size_t n)
{
	size_t i, j;
	int first = 1;

	if (!smtp_auth_keeps(p, n))
		return 0;
	if (smtp_put(out, outlen, pos, "250-", 4) == -1 ||
	    smtp_put(out, outlen, pos, p, 4) == -1)
		return -1;
	for (i = 5; i < n; i = j + 1) {
		for (j = i; j < n && p[j] != ' '; j++)
			;
		if (!smtp_mech_kept(p + i, j - i))
			continue;
		/* The first mechanism keeps the line's own separator, so
		 * "AUTH=" stays "AUTH=". */
		if (smtp_put(out, outlen, pos, first ? p + 4 : " ", 1) == -1 ||
		    smtp_put(out, outlen, pos, p + i, j - i) == -1)
			return -1;
		first = 0;
	}
	return smtp_put(out, outlen, pos, "\r\n", 2);
}

/* One extension line, keyword and parameters in p, n. */
static int
smtp_put_keyword(char *out, size_t outlen, size_t *pos, const char *p,
    size_t n)
{
	/* The keyword is the first word; parameters do not save it. */
	if (n >= 8 && strncasecmp(p, "STARTTLS", 8) == 0 &&
	    (n == 8 || p[8] == ' '))
		return 0;
	if (n > 5 && (strncasecmp(p, "AUTH ", 5) == 0 ||
	    strncasecmp(p, "AUTH=", 5) == 0))
		return smtp_put_auth(out, outlen, pos, p, n);
	if (smtp_put(out, outlen, pos, "250-", 4) == -1 ||
	    smtp_put(out, outlen, pos, p, n) == -1 ||
	    smtp_put(out, outlen, pos, "\r\n", 2) == -1)
		return -1;
	return 0;
}

/* Length of a reply line's text after "250-", without the line end. */
static size_t
smtp_line_body(const char *line, size_t n)
{
	size_t end = n - 1;

	if (end > 0 && line[end - 1] == '\r')
		end--;
	return end > 4 ? end - 4 : 0;
}

size_t
smtp_ehlo_filter(const char *in, size_t inlen, char *out, size_t outlen,
    int add_starttls)
{
	size_t i = 0, pos = 0, n, last;
	const char *line, *lf;
	int final = 0;

	while (i < inlen && !final) {
		line = in + i;
		lf = memchr(line, '\n', inlen - i);
		if (lf == NULL)
			return 0;
		n = lf - line + 1;
		if (!smtp_reply_line_ok(line, n, 250))
			return 0;
		final = line[3] != '-';

		/* The first line carries the server's name, not an
		 * extension. */
		if (i == 0 ? smtp_put(out, outlen, &pos, "250-", 4) == -1 ||
		    smtp_put(out, outlen, &pos, line + 4,
		    smtp_line_body(line, n)) == -1 ||
		    smtp_put(out, outlen, &pos, "\r\n", 2) == -1 :
		    smtp_put_keyword(out, outlen, &pos, line + 4,
		    smtp_line_body(line, n)) == -1)
			return 0;
		i += n;
	}
	if (!final || i != inlen)
		return 0;
	if (add_starttls &&
	    smtp_put(out, outlen, &pos, "250-STARTTLS\r\n", 14) == -1)
		return 0;

	/* Exactly the last line we kept is the final one. */
	for (last = pos - 2; last > 0 && out[last - 1] != '\n'; last--)
		;
	out[last + 3] = ' ';
	return pos;
}
