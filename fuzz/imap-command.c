/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The client's IMAP lines before login: imap_parse_command() finds the
 * tag and verb that decide what is allowed before TLS, and
 * imap_literal_at_end() decides how many following bytes are data, not
 * commands.  Misreading either lets a client hide a command from the
 * gateway or smuggle one past it, so each result is checked against the
 * RFC 9051 grammar written out again here.
 *
 * Input: the line, with or without its CRLF.  The backend's tagged
 * responses go through imap_tagged_status() with the same bytes.
 */
#define _DEFAULT_SOURCE

#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "imap_parse.h"

static const char *const fuzz_verbs[] = {
	[IMAP_CAPABILITY] = "CAPABILITY", [IMAP_NOOP] = "NOOP",
	[IMAP_LOGOUT] = "LOGOUT", [IMAP_ID] = "ID",
	[IMAP_STARTTLS] = "STARTTLS", [IMAP_LOGIN] = "LOGIN",
	[IMAP_AUTHENTICATE] = "AUTHENTICATE",
};

/* RFC 9051 tag: ASTRING-CHAR except "+", that is CHAR minus CTL, SP
 * and the atom-specials other than "]". */
static int
fuzz_tag_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\+", ch) == NULL;
}

static void
fuzz_command(const char *p, size_t n)
{
	struct imap_cmd c;
	size_t t, w, i;

	if (imap_parse_command(p, n, &c) == -1)
		return;
	t = strnlen(c.tag, sizeof(c.tag));
	FUZZ_CHECK(t > 0 && t <= IMAP_TAG_MAX && t < n);
	FUZZ_CHECK(memcmp(c.tag, p, t) == 0 && p[t] == ' ');
	for (i = 0; i < t; i++)
		FUZZ_CHECK(fuzz_tag_char((unsigned char)p[i]));

	/* The verb is the whole word after the tag, never a prefix of
	 * it: "LOGINX" must not pass for LOGIN. */
	w = t + 1;
	for (i = w; i < n && p[i] != ' ' && p[i] != '\r' && p[i] != '\n';
	    i++)
		;
	if (c.verb != IMAP_OTHER) {
		FUZZ_CHECK(c.verb > IMAP_OTHER &&
		    c.verb <= IMAP_AUTHENTICATE);
		FUZZ_CHECK(strlen(fuzz_verbs[c.verb]) == i - w &&
		    strncasecmp(p + w, fuzz_verbs[c.verb], i - w) == 0);
	}
	FUZZ_CHECK(c.args <= n && c.args >= i);
	if (c.has_args)
		FUZZ_CHECK(c.args < n && c.args == i + 1 && p[i] == ' ');
}

/* The last "{" and the "}" at the text's end, or 0 if there are none. */
static int
fuzz_marker(const char *p, size_t n, size_t *open, size_t *close)
{
	size_t e = imap_text_end(p, n), i;

	if (e == 0 || p[e - 1] != '}')
		return 0;
	for (i = e - 1; i > 0; i--)
		if (p[i - 1] == '{') {
			*open = i;
			*close = e - 1;
			return 1;
		}
	return 0;
}

static void
fuzz_literal(const char *p, size_t n)
{
	uint64_t count = 0, v = 0;
	size_t open, close, i, e;
	int sync = -1, r;

	e = imap_text_end(p, n);
	FUZZ_CHECK(e <= n && n - e <= 2);
	r = imap_literal_at_end(p, n, &count, &sync);
	FUZZ_CHECK(r >= -1 && r <= 1);
	if (!fuzz_marker(p, n, &open, &close)) {
		FUZZ_CHECK(r == 0);
		return;
	}

	/* Anything that looks like a marker is a literal or an error,
	 * never plain text: the peer may count bytes either way. */
	FUZZ_CHECK(r != 0);
	if (r == -1)
		return;
	FUZZ_CHECK(count <= IMAP_LITERAL_MAX);
	FUZZ_CHECK(sync == 0 || sync == 1);
	if (!sync) {
		FUZZ_CHECK(close > open && p[close - 1] == '+');
		close--;
	}
	FUZZ_CHECK(close > open);
	for (i = open; i < close; i++) {
		FUZZ_CHECK(p[i] >= '0' && p[i] <= '9');
		/* Stop adding once past the limit; the check above
		 * already failed then. */
		if (v <= IMAP_LITERAL_MAX)
			v = v * 10 + (uint64_t)(p[i] - '0');
	}
	FUZZ_CHECK(v == count);
}

static void
fuzz_status(const char *p, size_t n)
{
	struct imap_cmd c;
	enum imap_status st;

	st = imap_tagged_status(p, n, "*");
	FUZZ_CHECK(st >= IMAP_ST_NONE && st <= IMAP_ST_OTHER);
	FUZZ_CHECK((st != IMAP_ST_NONE) == imap_is_untagged(p, n));

	/* A response with our own tag ends the command; one that only
	 * starts with our tag ("A1x OK") must not. */
	if (imap_parse_command(p, n, &c) == -1)
		return;
	st = imap_tagged_status(p, n, c.tag);
	FUZZ_CHECK(st != IMAP_ST_NONE);
	if (st != IMAP_ST_OTHER)
		FUZZ_CHECK(c.verb == IMAP_OTHER);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;

	fuzz_command(p, size);
	fuzz_literal(p, size);
	fuzz_status(p, size);
	return 0;
}
