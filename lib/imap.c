/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>

#include "clock.h"
#include "exitcode.h"
#include "imap.h"
#include "log.h"
#include "net.h"
#include "relay.h"

/* A non-synchronising literal before TLS is skipped up to this size
 * (RFC 7888 LITERAL- allows 4096; this leaves room for LITERAL+). */
#define IMAP_SKIP_MAX	65536
#define IMAP_SAY_MAX	(IMAP_CAPS_MAX + 512)
/* Untagged lines tolerated before the answer to one of our commands. */
#define IMAP_SETUP_LINES 100

static int
imap_is_login(const struct imap_cmd *c)
{
	return c != NULL &&
	    (c->verb == IMAP_LOGIN || c->verb == IMAP_AUTHENTICATE);
}

/* Trace a client line.  A login command shows its tag, verb and SASL
 * mechanism only; the lines that continue it after a literal, and its
 * literals, carry credentials and show nothing. */
static void
imap_trace_client(const char *line, size_t n, const struct imap_cmd *c,
    int first)
{
	char text[IMAP_TAG_MAX + 80];
	size_t k = 0;

	/* A line that is no command may be a literal a client sent after
	 * its login was refused. */
	if (c == NULL) {
		log_trace("C:", "[hidden]", 8);
		return;
	}
	if (!imap_is_login(c)) {
		log_trace("C:", line, n);
		return;
	}
	if (!first) {
		log_trace("C:", "[hidden]", 8);
		return;
	}
	if (c->verb == IMAP_AUTHENTICATE)
		while (c->args + k < n && k < 40 && line[c->args + k] != ' ' &&
		    line[c->args + k] != '\r' && line[c->args + k] != '\n')
			k++;
	snprintf(text, sizeof(text), "%s %s%s%.*s [hidden]", c->tag,
	    c->verb == IMAP_LOGIN ? "LOGIN" : "AUTHENTICATE", k ? " " : "",
	    (int)k, line + c->args);
	log_trace("C:", text, strlen(text));
}

/* Trace a line before TLS: only a known command's tag and name.  A
 * client that goes on despite a refused LOGIN may send its literal
 * anyway, and that line would be a password. */
static void
imap_trace_before_tls(const char *line, size_t n,
    const struct imap_cmd *c, int first)
{
	char text[IMAP_TAG_MAX + 40];
	size_t verb, len;

	if (!first || c == NULL || c->verb == IMAP_OTHER) {
		log_trace("C:", "[hidden]", 8);
		return;
	}
	verb = strlen(c->tag) + 1;
	len = c->args > verb ? c->args - verb : 0;
	while (len > 0 && (line[verb + len - 1] == ' ' ||
	    line[verb + len - 1] == '\r' || line[verb + len - 1] == '\n'))
		len--;
	snprintf(text, sizeof(text), "%s %.*s%s", c->tag, (int)(len < 20 ?
	    len : 20), line + verb, c->has_args ? " [hidden]" : "");
	log_trace("C:", text, strlen(text));
	(void)n;
}

static int64_t
imap_deadline(unsigned seconds)
{
	return clock_ms() + (int64_t)seconds * 1000;
}

static int
imap_send_client(struct session *s, const void *data, size_t len)
{
	if (io_write(&s->client, data, len,
	    imap_deadline(s->be->login_timeout)) == -1)
		return session_fail(s, EXIT_CLIENT, "client: %s",
		    s->client.why);
	return 0;
}

static int imap_say(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Send a response of our own to the client. */
static int
imap_say(struct session *s, const char *fmt, ...)
{
	char line[IMAP_SAY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return session_fail(s, EXIT_TEMP, "cannot format a response");
	if ((size_t)n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	memcpy(line + n, "\r\n", 2);
	log_trace("S:", line, n);
	return imap_send_client(s, line, n + 2);
}

static int
imap_send_backend(struct session *s, const void *data, size_t len)
{
	if (io_write(&s->backend, data, len,
	    imap_deadline(s->be->login_timeout)) == -1)
		return session_fail(s, EXIT_TEMP, "backend: %s",
		    s->backend.why);
	return 0;
}

/* The backend leg failed (reason already recorded): say so to the
 * client in the words RFC 9051 section 7.1.5 has for it. */
static int
imap_unavailable(struct session *s, const char *tell)
{
	/* After SIGTERM the backend is not at fault, whatever failed. */
	(void)imap_say(s, "* BYE [UNAVAILABLE] %s", io_stop ?
	    "Server shutting down" : tell);
	return -1;
}

/* Read one backend line: its length, 0 at the end of the stream, or -1
 * (failure recorded). */
static ssize_t
imap_backend_line(struct session *s, int64_t deadline)
{
	ssize_t n = io_line(&s->backend, deadline);

	if (n == -1)
		return session_fail(s, EXIT_TEMP, "backend: %s",
		    s->backend.why);
	return n;
}

/* A backend line while we set the leg up, where an end is a failure. */
static ssize_t
imap_setup_line(struct session *s, int64_t deadline)
{
	ssize_t n = imap_backend_line(s, deadline);

	if (n == 0)
		return session_fail(s, EXIT_TEMP, "backend closed");
	if (n > 0)
		log_trace("B:", (const char *)s->backend.buf +
		    s->backend.off, n);
	return n;
}

static int
imap_leg_failed(struct session *s, struct io *io)
{
	if (io == &s->client)
		return session_fail(s, EXIT_CLIENT, "client: %s",
		    io->eof ? "closed inside a literal" : io->why);
	session_fail(s, EXIT_TEMP, "backend: %s",
	    io->eof ? "closed inside a literal" : io->why);
	return imap_unavailable(s, "Backend connection failed");
}

/* Move exactly count bytes from src to dst, or drop them if dst is
 * NULL, never looking at them: a literal is data, whatever it looks
 * like, and reading it as commands would let a client smuggle them. */
static int
imap_copy(struct session *s, struct io *src, struct io *dst,
    uint64_t count, int64_t deadline)
{
	ssize_t r;
	size_t k;

	while (count > 0) {
		if (src->len == 0) {
			r = io_fill(src, deadline);
			if (r <= 0)
				return imap_leg_failed(s, src);
		}
		k = src->len < count ? src->len : (size_t)count;
		if (dst != NULL && io_write(dst, src->buf + src->off, k,
		    deadline) == -1)
			return imap_leg_failed(s, dst);
		io_consume(src, k);
		count -= k;
	}
	return 0;
}

/* A client literal whose size we cannot trust ends the connection:
 * past it we could no longer tell where the next command starts. */
static int
imap_bad_literal(struct session *s, int lit, uint64_t count)
{
	if (lit == -1) {
		(void)imap_say(s, "* BYE Invalid literal");
		return session_fail(s, EXIT_CLIENT, "client: invalid literal");
	}
	(void)imap_say(s, "* BYE Literal too large");
	return session_fail(s, EXIT_CLIENT, "client: literal of %llu "
	    "bytes in a refused command", (unsigned long long)count);
}

/*
 * Consume a command that we answer ourselves: its first line (n bytes
 * at the front of the client buffer) and, after each non-synchronising
 * literal, the literal and the rest of the line.  Returns 1 if it
 * stopped at a synchronising literal (the client now waits for a "+"
 * that never comes, then for our answer), 0 once the command is read,
 * -1 on failure or end.
 */
static int
imap_swallow(struct session *s, size_t n, const struct imap_cmd *c,
    int64_t deadline)
{
	const char *line;
	uint64_t count = 0;
	int sync, lit, first = 1;
	ssize_t r;

	for (;;) {
		line = (const char *)s->client.buf + s->client.off;
		lit = imap_literal_at_end(line, n, &count, &sync);
		imap_trace_before_tls(line, n, c, first);
		io_consume(&s->client, n);
		if (lit == 0 || (lit == 1 && sync))
			return lit;
		if (lit == -1 || count > IMAP_SKIP_MAX)
			return imap_bad_literal(s, lit, count);
		if (imap_copy(s, &s->client, NULL, count, deadline) == -1)
			return -1;
		r = session_client_line(s, deadline);
		if (r <= 0)
			return -1;
		n = r;
		first = 0;
	}
}

/* STARTTLS from the client: go ahead, forget the plaintext buffer, and
 * handshake before the deadline set at accept. */
static int
imap_client_starttls(struct session *s, const char *tag)
{
	if (imap_say(s, "%s OK Begin TLS negotiation now", tag) == -1)
		return -1;
	return session_client_starttls(s);
}

/* Our answer to a command before TLS, already consumed; stopped says
 * it ended at a synchronising literal.  1 once TLS is up, 0 to go on,
 * -1 to end. */
static int
imap_local_answer(struct session *s, const struct imap_cmd *c,
    int stopped)
{
	const char *t = c->tag;

	if (stopped && c->verb != IMAP_LOGIN && c->verb != IMAP_AUTHENTICATE)
		return imap_say(s, "%s BAD Literal refused before TLS", t)
		    == -1 ? -1 : session_count_error(s);
	switch (c->verb) {
	case IMAP_CAPABILITY:
	case IMAP_NOOP:
	case IMAP_LOGOUT:
	case IMAP_STARTTLS:
		if (c->has_args)
			return imap_say(s, "%s BAD No arguments allowed", t)
			    == -1 ? -1 : session_count_error(s);
		break;
	default:
		break;
	}

	switch (c->verb) {
	case IMAP_CAPABILITY:
		if (imap_say(s, "* CAPABILITY IMAP4rev1 STARTTLS "
		    "LOGINDISABLED") == -1)
			return -1;
		return imap_say(s, "%s OK CAPABILITY completed", t);
	case IMAP_NOOP:
		return imap_say(s, "%s OK NOOP completed", t);
	case IMAP_ID:
		if (imap_say(s, "* ID NIL") == -1)
			return -1;
		return imap_say(s, "%s OK ID completed", t);
	case IMAP_LOGOUT:
		(void)imap_say(s, "* BYE Logging out");
		(void)imap_say(s, "%s OK LOGOUT completed", t);
		session_done(s, "client logout before TLS");
		return -1;
	case IMAP_STARTTLS:
		return imap_client_starttls(s, t) == -1 ? -1 : 1;
	case IMAP_LOGIN:
	case IMAP_AUTHENTICATE:
		/* RFC 9051 section 6.2.3: no password in plaintext, and no
		 * "+" that would invite one (RFC 2595 section 3.2). */
		if (imap_say(s, "%s NO [PRIVACYREQUIRED] Use STARTTLS first",
		    t) == -1)
			return -1;
		return session_count_error(s);
	default:
		if (imap_say(s, "%s BAD Use STARTTLS first", t) == -1)
			return -1;
		return session_count_error(s);
	}
}

/* Before TLS on 143 the client may only learn that STARTTLS exists,
 * start it, wait or leave; nothing reaches the backend.
 * Returns 1 once TLS is up, -1 to end. */
static int
imap_before_tls(struct session *s)
{
	struct imap_cmd c;
	int r, untagged;
	ssize_t n;

	for (;;) {
		n = session_client_line(s, s->tls_deadline);
		if (n <= 0)
			return -1;
		untagged = imap_parse_command((const char *)s->client.buf +
		    s->client.off, n, &c) == -1;
		r = imap_swallow(s, n, untagged ? NULL : &c,
		    s->tls_deadline);
		if (r == -1)
			return -1;
		if (untagged)
			r = imap_say(s, "* BAD Missing tag") == -1 ? -1 :
			    session_count_error(s);
		else
			r = imap_local_answer(s, &c, r);
		if (r != 0)
			return r;
	}
}

/* A tag for our own commands to the backend that nobody can predict,
 * so that nothing sent before it can pass for its answer. */
static int
imap_new_tag(struct session *s, char *tag, size_t len)
{
	unsigned char rnd[4];

	if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) != 0)
		return session_fail(s, EXIT_TEMP, "no random numbers");
	snprintf(tag, len, "M%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
	    rnd[3]);
	return 0;
}

/*
 * Send "TAG verb" to the backend and wait for its tagged OK, skipping
 * untagged lines (a capability list among them is kept in caps if caps
 * is not NULL).  A continuation request, a literal, a foreign tag or
 * anything but OK fails: we sent nothing that could need them.
 */
static int
imap_backend_command(struct session *s, const char *verb, char *caps,
    size_t capslen, int64_t deadline)
{
	char tag[16], line[64], text[80];
	uint64_t count;
	enum imap_status st;
	const char *p;
	int lines, sync, n;

	if (imap_new_tag(s, tag, sizeof(tag)) == -1)
		return -1;
	n = snprintf(line, sizeof(line), "%s %s\r\n", tag, verb);
	log_trace("G:", line, n);
	if (imap_send_backend(s, line, n) == -1)
		return -1;
	for (lines = 0; lines < IMAP_SETUP_LINES; lines++) {
		n = imap_setup_line(s, deadline);
		if (n == -1)
			return -1;
		p = (const char *)s->backend.buf + s->backend.off;
		st = imap_tagged_status(p, n, tag);
		if (imap_literal_at_end(p, n, &count, &sync) != 0 ||
		    (st == IMAP_ST_NONE && !imap_is_untagged(p, n)))
			break;
		if (st == IMAP_ST_OK) {
			io_consume(&s->backend, n);
			return 0;
		}
		if (st != IMAP_ST_NONE)
			return session_fail(s, EXIT_TEMP, "backend refused "
			    "%s: %s", verb, log_printable(text, sizeof(text),
			    p, n));
		if (caps != NULL)
			imap_caps_copy(p, n, caps, capslen);
		io_consume(&s->backend, n);
	}
	return session_fail(s, EXIT_TEMP, "backend: unexpected response "
	    "to %s", verb);
}

/* The backend's greeting must be OK; a capability code in it is kept.
 * PREAUTH is refused on every leg: over plaintext a client requiring
 * TLS must close (RFC 9051 section 7.1.4), and over TLS it would give
 * every client of the gateway a session nobody logged in to. */
static int
imap_backend_greeting(struct session *s, char *caps, size_t capslen,
    int64_t deadline)
{
	enum imap_status st;
	char text[120];
	const char *p;
	ssize_t n;

	n = imap_setup_line(s, deadline);
	if (n == -1)
		return -1;
	p = (const char *)s->backend.buf + s->backend.off;
	st = imap_tagged_status(p, n, "*");
	log_printable(text, sizeof(text), p, n);
	if (st == IMAP_ST_OK)
		imap_caps_copy(p, n, caps, capslen);
	io_consume(&s->backend, n);
	if (st == IMAP_ST_OK)
		return 0;
	if (st == IMAP_ST_PREAUTH)
		return session_fail(s, EXIT_TEMP, "backend greeting is "
		    "PREAUTH%s", s->backend.tls ? "" : " over plaintext");
	if (st == IMAP_ST_BYE)
		return session_fail(s, EXIT_TEMP, "backend said: %s", text);
	return session_fail(s, EXIT_TEMP, "backend: malformed greeting: %s",
	    text);
}

/* The backend's STARTTLS (RFC 9051 section 6.2.1), its handshake, and
 * the capabilities it offers inside TLS: what it said before is
 * forgotten. */
static int
imap_backend_starttls(struct session *s, char *caps, size_t capslen,
    int64_t deadline)
{
	caps[0] = '\0';
	net_quickack(s->backend.rfd);
	if (imap_backend_command(s, "STARTTLS", NULL, 0, deadline) == -1)
		return -1;

	/* Bytes after the go-ahead would be read as if they came over
	 * TLS: a response injection (CVE-2011-0411 class). */
	if (s->backend.len > 0)
		return session_fail(s, EXIT_TEMP, "backend sent %zu bytes "
		    "after its STARTTLS go-ahead", s->backend.len);
	if (session_backend_tls(s, deadline) == -1)
		return -1;
	return imap_backend_command(s, "CAPABILITY", caps, capslen,
	    deadline);
}

/* Connect, secure and verify the backend leg and read its greeting.
 * caps gets its filtered capabilities if the greeting or, with
 * STARTTLS or need_caps, a CAPABILITY command tells them. */
static int
imap_backend_open(struct session *s, char *caps, size_t capslen,
    int need_caps)
{
	int64_t deadline;

	caps[0] = '\0';
	if (session_backend_connect(s) == -1)
		return imap_unavailable(s, "Backend not reachable");
	deadline = imap_deadline(s->cfg->handshake_timeout);
	if (s->be->security == CFG_SEC_TLS &&
	    session_backend_tls(s, deadline) == -1)
		return imap_unavailable(s, "Backend connection could not "
		    "be secured");
	if (imap_backend_greeting(s, caps, capslen, deadline) == -1)
		return imap_unavailable(s, "Backend not available");
	if (s->be->security == CFG_SEC_STARTTLS &&
	    imap_backend_starttls(s, caps, capslen, deadline) == -1)
		return imap_unavailable(s, "Backend connection could not "
		    "be secured");
	if (need_caps && caps[0] == '\0' &&
	    imap_backend_command(s, "CAPABILITY", caps, capslen,
	    deadline) == -1)
		return imap_unavailable(s, "Backend not available");
	s->backend_up = 1;
	return 0;
}

/* Our greeting with the backend's capabilities, when we know them. */
static int
imap_greet(struct session *s, const char *caps, int add_starttls)
{
	if (caps[0] == '\0' && !add_starttls)
		return imap_say(s, "* OK %s mailgate ready", s->cfg->hostname);
	return imap_say(s, "* OK [CAPABILITY %s%s%s] %s mailgate ready",
	    caps, caps[0] != '\0' && add_starttls ? " " : "",
	    add_starttls ? "STARTTLS" : "", s->cfg->hostname);
}

/* Whether the backend's last response line was an untagged BYE. */
static int imap_said_bye;

/* No backend line in the login phase, while a command waits for its
 * answer.  A backend that said BYE (relayed already) has had its say
 * and the client's side ends too; one that just closed left the
 * command unanswered, a failure the client is told of. */
static int
imap_backend_gone(struct session *s, ssize_t n)
{
	if (n == 0 && imap_said_bye) {
		io_shut_write(&s->client);
		session_done(s, "backend closed");
		return -1;
	}
	if (n == 0)
		session_fail(s, EXIT_TEMP, "backend closed before answering");
	return imap_unavailable(s, n == 0 ? "Backend connection lost" :
	    "Backend connection failed");
}

/* Pass one backend response to the client: its first line with the
 * capability list filtered, then each literal it carries, raw, and the
 * rest of the response after it. */
static int
imap_relay_response(struct session *s, size_t n, int add_starttls)
{
	char out[IO_BUFSZ + 16];
	const char *p = (const char *)s->backend.buf + s->backend.off;
	int64_t deadline = imap_deadline(s->be->login_timeout);
	uint64_t count;
	int lit, sync, r;
	ssize_t len;
	size_t m;

	lit = imap_literal_at_end(p, n, &count, &sync);
	m = imap_filter_line(p, n, out, sizeof(out), add_starttls);
	io_consume(&s->backend, n);
	log_trace("S:", out, m);
	r = imap_send_client(s, out, m);
	explicit_bzero(out, m);
	while (r == 0 && lit == 1) {
		if (imap_copy(s, &s->backend, &s->client, count, deadline)
		    == -1)
			return -1;
		len = imap_backend_line(s, deadline);
		if (len <= 0)
			return imap_backend_gone(s, len);
		p = (const char *)s->backend.buf + s->backend.off;
		lit = imap_literal_at_end(p, len, &count, &sync);
		log_trace("S:", p, len);
		r = imap_send_client(s, p, len);
		io_consume(&s->backend, len);
	}
	if (r == 0 && lit == -1) {
		session_fail(s, EXIT_TEMP, "backend: invalid literal");
		return imap_unavailable(s, "Backend protocol error");
	}
	return r;
}

/* A continuation request, passed as it is.  During AUTHENTICATE it is
 * a SASL challenge and stays out of the trace. */
static int
imap_relay_continuation(struct session *s, size_t n, int hide)
{
	const char *p = (const char *)s->backend.buf + s->backend.off;
	int r;

	log_trace("S:", hide ? "+ [hidden]" : p, hide ? 10 : n);
	r = imap_send_client(s, p, n);
	io_consume(&s->backend, n);
	return r;
}

/*
 * Relay backend responses to the client until the one tagged with the
 * command's tag (*st set, returns 0) or, if want_cont, a continuation
 * request (returns 1).  Returns -1 on failure or end.
 */
static int
imap_relay_responses(struct session *s, const struct imap_cmd *c,
    int want_cont, enum imap_status *st)
{
	int add = s->client.tls == NULL && !imap_is_login(c);
	const char *p;
	ssize_t n;

	for (;;) {
		n = imap_backend_line(s, imap_deadline(s->be->login_timeout));
		if (n <= 0)
			return imap_backend_gone(s, n);
		p = (const char *)s->backend.buf + s->backend.off;
		if (p[0] == '+' && want_cont)
			return imap_relay_continuation(s, n,
			    c->verb == IMAP_AUTHENTICATE) == -1 ? -1 : 1;
		*st = imap_tagged_status(p, n, c->tag);
		imap_said_bye = imap_tagged_status(p, n, "*") == IMAP_ST_BYE;
		if (p[0] == '+' ||
		    (*st == IMAP_ST_NONE && !imap_is_untagged(p, n))) {
			session_fail(s, EXIT_TEMP, "backend: unexpected %s",
			    p[0] == '+' ? "continuation request" :
			    "response tag");
			return imap_unavailable(s, "Backend protocol error");
		}
		if (imap_relay_response(s, n, add) == -1)
			return -1;
		if (*st != IMAP_ST_NONE)
			return 0;
	}
}

/* Forward the client line at the front of its buffer, n bytes. */
static int
imap_forward_line(struct session *s, size_t n, const struct imap_cmd *c,
    int first)
{
	const char *line = (const char *)s->client.buf + s->client.off;

	imap_trace_client(line, n, c, first);
	if (imap_send_backend(s, line, n) == -1)
		return imap_unavailable(s, "Backend connection failed");
	io_consume(&s->client, n);
	return 0;
}

/*
 * Pass a command to the backend: its first line (n bytes at the front
 * of the client buffer), then each literal and the line after it.  A
 * synchronising literal is sent only after the backend's "+"; if it
 * answers with its tagged response instead, the command is over.
 * Returns 0 with *done set if so, 0 with the whole command sent, -1.
 */
static int
imap_forward_command(struct session *s, size_t n, const struct imap_cmd *c,
    int *done, enum imap_status *st)
{
	int64_t deadline = imap_deadline(s->be->login_timeout);
	const char *line;
	uint64_t count;
	int lit, sync, first = 1, r;
	ssize_t len;

	*done = 0;
	for (;;) {
		line = (const char *)s->client.buf + s->client.off;
		lit = imap_literal_at_end(line, n, &count, &sync);
		if (lit == -1)
			return imap_bad_literal(s, lit, 0);
		if (imap_forward_line(s, n, c, first) == -1)
			return -1;
		if (lit == 0)
			return 0;
		if (sync) {
			r = imap_relay_responses(s, c, 1, st);
			if (r != 1) {
				*done = 1;
				return r;
			}
		}
		if (imap_copy(s, &s->client, &s->backend, count, deadline)
		    == -1)
			return -1;
		len = session_client_line(s, deadline);
		if (len <= 0)
			return -1;
		n = len;
		first = 0;
	}
}

/* AUTHENTICATE (RFC 9051 section 6.2.2, SASL-IR RFC 4959): challenges
 * go to the client and its answers, one line each, to the backend,
 * until the tagged response. */
static int
imap_sasl_exchange(struct session *s, const struct imap_cmd *c,
    enum imap_status *st)
{
	ssize_t n;
	int r;

	for (;;) {
		r = imap_relay_responses(s, c, 1, st);
		if (r != 1)
			return r;
		n = session_client_line(s, imap_deadline(s->be->login_timeout));
		if (n <= 0 || imap_forward_line(s, n, c, 0) == -1)
			return -1;
	}
}

/* One client command through the backend, with its responses.
 * Returns 1 after a successful login, 0 to go on, -1 to end. */
static int
imap_pass_command(struct session *s, size_t n, const struct imap_cmd *c)
{
	enum imap_status st = IMAP_ST_NONE;
	int done, r;

	if (imap_forward_command(s, n, c, &done, &st) == -1)
		return -1;
	if (done)
		r = 0;
	else if (c->verb == IMAP_AUTHENTICATE)
		r = imap_sasl_exchange(s, c, &st);
	else
		r = imap_relay_responses(s, c, 0, &st);
	if (r == -1 || !imap_is_login(c))
		return r;

	/* Only the backend's tagged OK to this very command logs in. */
	if (st == IMAP_ST_OK) {
		s->login = LOGIN_OK;
		return 1;
	}
	if (s->login != LOGIN_OK)
		s->login = LOGIN_FAILED;
	return 0;
}

/* A command the gateway answers itself after TLS (or with plaintext
 * clients allowed): STARTTLS, and lines without a tag.  0 or -1. */
static int
imap_login_local(struct session *s, size_t n, const struct imap_cmd *c,
    int untagged)
{
	int r;

	r = imap_swallow(s, n, untagged ? NULL : c,
	    imap_deadline(s->be->login_timeout));
	if (r == -1)
		return -1;
	if (untagged)
		r = imap_say(s, "* BAD Missing tag");
	else if (r == 1 || c->has_args)
		r = imap_say(s, "%s BAD No arguments allowed", c->tag);
	else if (s->client.tls != NULL)
		r = imap_say(s, "%s BAD TLS already active", c->tag);
	else
		return imap_client_starttls(s, c->tag);
	return r == -1 ? -1 : session_count_error(s);
}

/*
 * The login phase: one client command at a time through the backend,
 * with capabilities filtered, until a login succeeds; then the opaque
 * relay.  LOGOUT also hands over to the relay, which lets the backend
 * say goodbye and close.
 */
static int
imap_login_phase(struct session *s)
{
	struct imap_cmd c;
	int untagged, r;
	ssize_t n;

	for (;;) {
		n = session_client_line(s, imap_deadline(s->be->login_timeout));
		if (n <= 0)
			return -1;
		untagged = imap_parse_command((const char *)s->client.buf +
		    s->client.off, n, &c) == -1;
		if (untagged || c.verb == IMAP_STARTTLS) {
			r = imap_login_local(s, n, &c, untagged);
		} else if (c.verb == IMAP_LOGOUT) {
			if (imap_forward_line(s, n, &c, 1) == -1)
				return -1;
			break;
		} else {
			r = imap_pass_command(s, n, &c);
			if (r == 1)
				break;
		}
		if (r == -1)
			return -1;
	}
	return relay_run(s, s->login == LOGIN_OK ? s->be->idle_timeout :
	    s->be->login_timeout, "* BYE [UNAVAILABLE] Backend connection "
	    "lost\r\n");
}

/* Bring up the legs in the order the role needs, then the login phase.
 * Internally -1 means "stop": the session says whether it was a failure
 * or a normal end. */
static int
imap_start(struct session *s)
{
	char caps[IMAP_CAPS_MAX];
	int plain = s->role == ROLE_IMAP_STARTTLS &&
	    s->cfg->allow_plaintext_clients;

	if (s->role == ROLE_IMAPS || plain) {
		if ((!plain && session_client_tls(s) == -1) ||
		    imap_backend_open(s, caps, sizeof(caps), 1) == -1 ||
		    imap_greet(s, caps, plain) == -1)
			return -1;
		return imap_login_phase(s);
	}

	if (imap_say(s, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] "
	    "%s mailgate ready", s->cfg->hostname) == -1)
		return -1;
	if (imap_before_tls(s) == -1)
		return -1;

	/* RFC 9051 section 6.2.1: no greeting after STARTTLS; the client
	 * asks for the capabilities again, and the backend answers. */
	if (imap_backend_open(s, caps, sizeof(caps), 0) == -1)
		return -1;
	return imap_login_phase(s);
}

static const struct session_words imap_words = {
	.too_many_errors = "* BYE Too many errors\r\n",
	.line_too_long = "* BYE Line too long\r\n",
	.timeout = "* BYE Timeout\r\n",
	.shutdown = "* BYE [UNAVAILABLE] Server shutting down\r\n",
};

int
imap_run(struct session *s)
{
	s->words = &imap_words;
	(void)imap_start(s);
	return s->status == EXIT_OK ? 0 : -1;
}
