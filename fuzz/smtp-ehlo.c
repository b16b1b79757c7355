/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * smtp_ehlo_filter() rewrites the backend's EHLO reply before the client
 * sees it.  Whatever the backend sends, the result must be a reply a
 * client parses the way we meant (RFC 5321 4.2: "250-" lines, then
 * exactly one "250 " line), must not offer STARTTLS again once TLS is up
 * (RFC 3207 4.2), and must not offer a channel-binding mechanism that
 * would bind to our TLS session instead of the backend's (RFC 5929).
 *
 * Input: one byte that sizes a deliberately small output buffer, then
 * the reply.  Each input runs with add_starttls 0 and 1.
 */
#define _DEFAULT_SOURCE

#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtp.h"

/* Whether in is a complete 250 reply, by RFC 5321's grammar loosened
 * the way the header promises (LF alone ends a line too). */
static int
fuzz_well_formed(const char *in, size_t n)
{
	size_t i = 0, len;
	const char *lf;

	while (i < n) {
		lf = memchr(in + i, '\n', n - i);
		if (lf == NULL)
			return 0;
		len = lf - (in + i) + 1;
		if (!smtp_reply_line_ok(in + i, len, 250))
			return 0;
		i += len;
		if (in[i - len + 3] != '-')
			return i == n;
	}
	return 0;
}

/* The keyword of an extension line is the text up to the first SP
 * (RFC 5321 4.1.1.1, ehlo-line). */
static int
fuzz_keyword_is(const char *body, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n >= k && strncasecmp(body, kw, k) == 0 &&
	    (n == k || body[k] == ' ');
}

/* Whether an AUTH line offers a mechanism named <something>-PLUS. */
static int
fuzz_offers_plus(const char *body, size_t n)
{
	size_t i = 5, j;

	if (n < 5 || strncasecmp(body, "AUTH", 4) != 0 ||
	    (body[4] != ' ' && body[4] != '='))
		return 0;
	while (i < n) {
		for (j = i; j < n && body[j] != ' '; j++)
			;
		if (j - i > 5 && strncasecmp(body + j - 5, "-PLUS", 5) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* Check one filtered reply; returns how many STARTTLS lines it has. */
static int
fuzz_check_output(const char *out, size_t n)
{
	size_t i = 0, len, lines = 0;
	const char *lf;
	int starttls = 0;

	FUZZ_CHECK(n >= 6);
	while (i < n) {
		lf = memchr(out + i, '\n', n - i);
		FUZZ_CHECK(lf != NULL);
		len = lf - (out + i) + 1;
		FUZZ_CHECK(len >= 6 && out[i + len - 2] == '\r');
		FUZZ_CHECK(memcmp(out + i, "250", 3) == 0);

		/* Exactly the last line is final, or a client stops
		 * reading early and takes the rest for the next reply. */
		FUZZ_CHECK(out[i + 3] == (i + len == n ? ' ' : '-'));

		/* The first line names the server; it is no extension. */
		if (lines++ > 0 && fuzz_keyword_is(out + i + 4, len - 6,
		    "STARTTLS")) {
			starttls++;
		}
		if (lines > 1)
			FUZZ_CHECK(!fuzz_offers_plus(out + i + 4, len - 6));
		i += len;
	}
	return starttls;
}

static void
fuzz_one(const char *in, size_t n, size_t small, int add)
{
	/* Every input line of at least 4 bytes becomes at most 6 bytes
	 * longer, so twice the input plus STARTTLS always fits. */
	size_t big = 2 * n + 16, got, again, cut;
	char *out = malloc(big), *out2 = malloc(big), *tiny;

	FUZZ_CHECK(out != NULL && out2 != NULL);
	got = smtp_ehlo_filter(in, n, out, big, add);
	FUZZ_CHECK(got <= big);
	FUZZ_CHECK((got != 0) == fuzz_well_formed(in, n));
	if (got != 0) {
		FUZZ_CHECK(fuzz_check_output(out, got) == add);

		/* Filtering is settled after one pass: a second one
		 * changes nothing, and takes an added STARTTLS away. */
		again = smtp_ehlo_filter(out, got, out2, big, 0);
		FUZZ_CHECK(again != 0);
		if (!add)
			FUZZ_CHECK(again == got &&
			    memcmp(out, out2, got) == 0);
		else
			FUZZ_CHECK(fuzz_check_output(out2, again) == 0);
	}

	/* Too small a buffer is refused, never overrun or cut short;
	 * tiny has exactly cut bytes so that ASan sees an overrun. */
	cut = got != 0 && small >= got ? got : small;
	tiny = malloc(cut == 0 ? 1 : cut);
	FUZZ_CHECK(tiny != NULL);
	again = smtp_ehlo_filter(in, n, tiny, cut, add);
	if (got != 0 && cut >= got) {
		FUZZ_CHECK(again != 0);
		FUZZ_CHECK(again == 0 ||
		    (again == got && memcmp(tiny, out, got) == 0));
	} else
		FUZZ_CHECK(again == 0);
	free(tiny);
	free(out);
	free(out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fuzz_one((const char *)data + 1, size - 1, data[0], 0);
	fuzz_one((const char *)data + 1, size - 1, data[0], 1);
	return 0;
}
