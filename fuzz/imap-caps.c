/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * imap_filter_line() and imap_caps_copy() rewrite the backend's
 * capability lists before the client sees them.  Whatever the backend
 * sends, a list that a client would parse (RFC 9051: "* CAPABILITY ..."
 * or a "[CAPABILITY ...]" response code) must not offer STARTTLS or
 * LOGINDISABLED once TLS is up, nor a channel-binding mechanism, and the
 * rest of the line must come through untouched.
 *
 * Input: one byte of flags (bit 0: add STARTTLS; the rest size the small
 * buffers), then the response line.
 */
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "imap_parse.h"

static int
fuzz_word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

static int
fuzz_forbidden(const char *p, size_t n)
{
	return fuzz_word_is(p, n, "STARTTLS") ||
	    fuzz_word_is(p, n, "LOGINDISABLED") ||
	    (n > 10 && strncasecmp(p, "AUTH=", 5) == 0 &&
	    strncasecmp(p + n - 5, "-PLUS", 5) == 0);
}

/* Count the forbidden words in a space-separated list. */
static int
fuzz_count_forbidden(const char *p, size_t n)
{
	size_t i = 0, j;
	int bad = 0;

	while (i < n) {
		for (j = i; j < n && p[j] != ' '; j++)
			;
		bad += j > i && fuzz_forbidden(p + i, j - i);
		i = j + 1;
	}
	return bad;
}

/* Where a client finds the capability list of a response, by the
 * grammar: "* CAPABILITY" SP list, or tag SP status SP "[CAPABILITY"
 * (SP list)? "]".  Returns 0 if the line has none. */
static int
fuzz_list(const char *p, size_t n, size_t *start, size_t *end)
{
	const char *sp1, *sp2, *close;
	size_t w;

	n = imap_text_end(p, n);
	if ((sp1 = memchr(p, ' ', n)) == NULL || sp1 == p)
		return 0;
	w = sp1 - p + 1;
	sp2 = memchr(p + w, ' ', n - w);
	if (sp2 == NULL)
		sp2 = p + n;
	if (w == 2 && p[0] == '*' &&
	    fuzz_word_is(p + w, sp2 - (p + w), "CAPABILITY")) {
		*start = sp2 - p;
		*end = n;
		return 1;
	}
	if (!(fuzz_word_is(p + w, sp2 - (p + w), "OK") ||
	    fuzz_word_is(p + w, sp2 - (p + w), "NO") ||
	    fuzz_word_is(p + w, sp2 - (p + w), "BAD") ||
	    fuzz_word_is(p + w, sp2 - (p + w), "PREAUTH") ||
	    fuzz_word_is(p + w, sp2 - (p + w), "BYE")))
		return 0;
	w = sp2 - p + 1;
	if (w + 11 >= n || strncasecmp(p + w, "[CAPABILITY", 11) != 0 ||
	    (p[w + 11] != ' ' && p[w + 11] != ']'))
		return 0;
	if ((close = memchr(p + w + 11, ']', n - w - 11)) == NULL)
		return 0;
	*start = w + 11;
	*end = close - p;
	return 1;
}

/* Whether a CR or LF hides inside the line, before its line end.  No
 * valid IMAP line has one. */
static int
fuzz_inner_crlf(const char *in, size_t len)
{
	size_t e = imap_text_end(in, len);

	return memchr(in, '\r', e) != NULL || memchr(in, '\n', e) != NULL;
}

static void
fuzz_check_line(const char *in, size_t len, const char *out, size_t n,
    int add)
{
	size_t s, e, tail;

	if (!fuzz_list(in, len, &s, &e)) {
		/* A line without a list comes through byte for byte. */
		FUZZ_CHECK(n == len && memcmp(in, out, len) == 0);
		return;
	}

	/* Only the list changes; what comes before and after it stays. */
	tail = len - e;
	FUZZ_CHECK(n >= s + tail);
	FUZZ_CHECK(memcmp(in, out, s) == 0);
	FUZZ_CHECK(memcmp(in + e, out + n - tail, tail) == 0);
	FUZZ_CHECK(fuzz_count_forbidden(out + s, n - tail - s) == add);

	/* And the list the client parses out of the result is clean. */
	FUZZ_CHECK(fuzz_list(out, n, &s, &e));
	FUZZ_CHECK(fuzz_count_forbidden(out + s, e - s) == add);
}

static void
fuzz_caps_copy(const char *in, size_t len, size_t capslen)
{
	static const char mark[] = "untouched";
	char *caps = malloc(capslen);
	size_t n, i;

	FUZZ_CHECK(caps != NULL);
	memcpy(caps, mark, capslen < sizeof(mark) ? capslen : sizeof(mark));
	if (capslen < sizeof(mark))
		caps[capslen - 1] = '\0';
	imap_caps_copy(in, len, caps, capslen);
	n = strnlen(caps, capslen);
	FUZZ_CHECK(n < capslen);

	/* What goes into our own greeting is one clean list: printable,
	 * no "]" that would end the response code early. */
	if (capslen < sizeof(mark) || strcmp(caps, mark) != 0) {
		for (i = 0; i < n; i++)
			FUZZ_CHECK(isprint((unsigned char)caps[i]) &&
			    caps[i] != ']');
		FUZZ_CHECK(fuzz_count_forbidden(caps, n) == 0);
	}
	free(caps);
}

static void
fuzz_one(const char *in, size_t len, size_t small, int add)
{
	/* The list only loses blanks, so the line grows by at most the
	 * " STARTTLS" we may add. */
	size_t big = len + 9, got, again, cut;
	char *out = malloc(big + 1), *out2 = malloc(big + 1), *tiny;

	FUZZ_CHECK(out != NULL && out2 != NULL);
	got = imap_filter_line(in, len, out, big, add);
	FUZZ_CHECK(got <= big && (got != 0 || len == 0));
	fuzz_check_line(in, len, out, got, add);
	if (!add) {
		FUZZ_CHECK(imap_filter_caps(in, len, out2, big) == got &&
		    memcmp(out, out2, got) == 0);
	}

	/* A second pass finds nothing more to do, unless a CR or LF
	 * inside the line ended up next to the end, where the second
	 * pass takes it for the line end. */
	if (!add && !fuzz_inner_crlf(in, len))
		FUZZ_CHECK(imap_filter_line(out, got, out2, big, 0) == got &&
		    memcmp(out, out2, got) == 0);

	/* Too small a buffer is refused, never overrun or cut short. */
	cut = small >= got ? got : small;
	tiny = malloc(cut == 0 ? 1 : cut);
	FUZZ_CHECK(tiny != NULL);
	again = imap_filter_line(in, len, tiny, cut, add);
	if (cut >= got)
		FUZZ_CHECK(again == got && memcmp(tiny, out, got) == 0);
	else
		FUZZ_CHECK(again == 0);
	free(tiny);
	free(out);
	free(out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	fuzz_one(in, len, data[0] >> 1, data[0] & 1);
	fuzz_caps_copy(in, len, IMAP_CAPS_MAX);
	fuzz_caps_copy(in, len, 1 + (data[0] >> 1) % 64);
	return 0;
}
