/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "io.h"

static const struct {
	const char *name;
	enum imap_verb verb;
} imap_verbs[] = {
	{ "CAPABILITY", IMAP_CAPABILITY }, { "NOOP", IMAP_NOOP },
	{ "LOGOUT", IMAP_LOGOUT }, { "ID", IMAP_ID },
	{ "STARTTLS", IMAP_STARTTLS }, { "LOGIN", IMAP_LOGIN },
	{ "AUTHENTICATE", IMAP_AUTHENTICATE },
};

/* Length of a line without its CRLF or LF. */
size_t
imap_text_end(const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\n')
		n--;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

int
imap_literal_at_end(const char *line, size_t len, uint64_t *count,
    int *sync)
{
	size_t end = imap_text_end(line, len), open;
	uint64_t v = 0;
	unsigned d;

	if (end == 0 || line[end - 1] != '}')
		return 0;
	end--;
	for (open = end; open > 0 && line[open - 1] != '{'; open--)
		;
	if (open == 0)
		return 0;

	*sync = 1;
	if (end > open && line[end - 1] == '+') {
		*sync = 0;
		end--;
	}
	if (open == end)
		return -1;
	for (; open < end; open++) {
		if (!isdigit((unsigned char)line[open]))
			return -1;
		d = line[open] - '0';
		if (v > (IMAP_LITERAL_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*count = v;
	return 1;
}

/* Capabilities that cannot work through the gateway: TLS is already up
 * on both legs, and channel binding (RFC 5929) would bind to our TLS
 * session, not to the one the backend sees. */
static int
imap_cap_dropped(const char *p, size_t n)
{
	if ((n == 8 && strncasecmp(p, "STARTTLS", 8) == 0) ||
	    (n == 13 && strncasecmp(p, "LOGINDISABLED", 13) == 0))
		return 1;
	return n > 10 && strncasecmp(p, "AUTH=", 5) == 0 &&
	    strncasecmp(p + n - 5, "-PLUS", 5) == 0;
}

static int
imap_is_status_word(const char *p, size_t n)
{
	static const char *const words[] = { "OK", "NO", "BAD", "PREAUTH",
	    "BYE" };
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0)
			return 1;
	return 0;
}

/* Find a line's capability list: [*start, *end) after the word
 * CAPABILITY, up to the line end or the closing ']'.  Returns 0 if the
 * line has none. */
static int
imap_caps_span(const char *p, size_t n, size_t *start, size_t *end)
{
	size_t e = imap_text_end(p, n), i = 0, w;
	const char *close;

	while (i < e && p[i] != ' ')
		i++;
	if (i == 0 || i == e)
		return 0;
	w = ++i;
	while (i < e && p[i] != ' ')
		i++;
	if (w == 2 && p[0] == '*' && i - w == 10 &&
	    strncasecmp(p + w, "CAPABILITY", 10) == 0) {
		*start = i;
		*end = e;
		return 1;
	}
	if (!imap_is_status_word(p + w, i - w) || i + 13 > e ||
	    p[i + 1] != '[' || strncasecmp(p + i + 2, "CAPABILITY", 10) != 0 ||
	    (p[i + 12] != ' ' && p[i + 12] != ']'))
		return 0;
	close = memchr(p + i + 12, ']', e - (i + 12));
	if (close == NULL)
		return 0;
	*start = i + 12;
	*end = close - p;
	return 1;
}

/* Append to out at *pos; -1 if it does not fit. */
static int
imap_put(char *out, size_t outlen, size_t *pos, const char *p, size_t n)
{
	if (n > outlen - *pos)
		return -1;
	memcpy(out + *pos, p, n);
	*pos += n;
	return 0;
}

static int
imap_put_caps(char *out, size_t outlen, size_t *pos, const char *p,
    size_t end)
{
	size_t i = 0, j;

	/* Any control byte separates words like a blank: otherwise
	 * "STARTTLS\r" would not be recognised, and the CR would end the
	 * line for the client right after it. */
	while (i < end) {
		while (i < end && (unsigned char)p[i] <= ' ')
			i++;
		for (j = i; j < end && (unsigned char)p[j] > ' '; j++)
			;
		if (j > i && !imap_cap_dropped(p + i, j - i) &&
		    (imap_put(out, outlen, pos, " ", 1) == -1 ||
		    imap_put(out, outlen, pos, p + i, j - i) == -1))
			return -1;
		i = j;
	}
	return 0;
}

/* imap_filter_caps(), optionally adding STARTTLS to the list for a
 * client that is still in plaintext. */
size_t
imap_filter_line(const char *in, size_t len, char *out, size_t outlen,
    int add_starttls)
{
	size_t start, end, pos = 0;

	if (!imap_caps_span(in, len, &start, &end))
		return imap_put(out, outlen, &pos, in, len) == -1 ? 0 : len;
	if (imap_put(out, outlen, &pos, in, start) == -1 ||
	    imap_put_caps(out, outlen, &pos, in + start, end - start) ==
	    -1 || (add_starttls &&
	    imap_put(out, outlen, &pos, " STARTTLS", 9) == -1) ||
	    imap_put(out, outlen, &pos, in + end, len - end) == -1)
		return 0;
	return pos;
}

size_t
imap_filter_caps(const char *in, size_t len, char *out, size_t outlen)
{
	return imap_filter_line(in, len, out, outlen, 0);
}

/* The filtered capability list of a line, for our own greeting; left
 * empty if the line has none or one we could not repeat safely. */
void
imap_caps_copy(const char *line, size_t n, char *caps, size_t capslen)
{
	char out[IO_BUFSZ + 16];
	size_t m, start, end, i;

	m = imap_filter_caps(line, n, out, sizeof(out));
	if (m == 0 || !imap_caps_span(out, m, &start, &end))
		return;
	if (start < end && out[start] == ' ')
		start++;
	if (end - start >= capslen)
		return;
	for (i = start; i < end; i++)
		if (out[i] == ']' || !isprint((unsigned char)out[i]))
			return;
	memcpy(caps, out + start, end - start);
	caps[end - start] = '\0';
}

/* The status word of a response tagged with tag ("*" for untagged). */
enum imap_status
imap_tagged_status(const char *p, size_t n, const char *tag)
{
	static const enum imap_status st[] = { IMAP_ST_OK, IMAP_ST_NO,
	    IMAP_ST_BAD, IMAP_ST_PREAUTH, IMAP_ST_BYE };
	static const char *const words[] = { "OK", "NO", "BAD", "PREAUTH",
	    "BYE" };
	size_t t = strlen(tag), i, k;

	if (n <= t || memcmp(p, tag, t) != 0 || p[t] != ' ')
		return IMAP_ST_NONE;
	p += t + 1;
	n -= t + 1;
	for (i = 0; i < n && isalpha((unsigned char)p[i]); i++)
		;
	if (i < n && p[i] != ' ' && p[i] != '\r' && p[i] != '\n')
		return IMAP_ST_OTHER;
	for (k = 0; k < sizeof(st) / sizeof(st[0]); k++)
		if (strlen(words[k]) == i && strncasecmp(p, words[k], i) == 0)
			return st[k];
	return IMAP_ST_OTHER;
}

int
imap_is_untagged(const char *p, size_t n)
{
	return n >= 2 && p[0] == '*' && p[1] == ' ';
}

/* RFC 9051 tag: astring characters other than '+'. */
static int
imap_tag_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\+", ch) == NULL;
}

/* Split a client command line.  Returns -1 if it has no valid tag. */
int
imap_parse_command(const char *p, size_t n, struct imap_cmd *c)
{
	size_t i = 0, w, k;

	memset(c, 0, sizeof(*c));
	while (i < n && imap_tag_char((unsigned char)p[i]))
		i++;
	if (i == 0 || i > IMAP_TAG_MAX || i >= n || p[i] != ' ')
		return -1;
	memcpy(c->tag, p, i);
	w = ++i;
	while (i < n && p[i] != ' ' && p[i] != '\r' && p[i] != '\n')
		i++;
	for (k = 0; k < sizeof(imap_verbs) / sizeof(imap_verbs[0]); k++)
		if (strlen(imap_verbs[k].name) == i - w &&
		    strncasecmp(p + w, imap_verbs[k].name, i - w) == 0)
			c->verb = imap_verbs[k].verb;
	c->args = i < n && p[i] == ' ' ? i + 1 : i;
	c->has_args = c->args > i && c->args < n && p[c->args] != '\r' &&
	    p[c->args] != '\n';
	return 0;
}

