/* SPDX-License-Identifier: GPL-3.0-or-later */
/* IMAP capability filtering and literal parsing, checked against exact
 * expected results. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "imap.h"

static int failed, count;

static void
result(int ok, const char *name)
{
	count++;
	if (!ok)
		failed++;
	printf("%sok %d - %s\n", ok ? "" : "not ", count, name);
}

static void
filter(const char *name, const char *in, const char *want)
{
	char out[4096];
	size_t n = imap_filter_caps(in, strlen(in), out, sizeof(out));
	int ok = n == strlen(want) && memcmp(out, want, n) == 0;

	result(ok, name);
	if (!ok)
		printf("# got: %.*s# want: %s", (int)n, out, want);
}

/* want: -1 invalid, 0 none, else 1 with count and sync as given. */
static void
literal(const char *name, const char *line, int want, uint64_t want_count,
    int want_sync)
{
	uint64_t n = 12345;
	int sync = -7, r, ok;

	r = imap_literal_at_end(line, strlen(line), &n, &sync);
	ok = r == want && (r != 1 || (n == want_count && sync == want_sync));
	result(ok, name);
	if (!ok)
		printf("# got: %d %" PRIu64 " %d\n", r, n, sync);
}

static void
filter_tests(void)
{
	char small[8];

	filter("a CR glued to STARTTLS does not hide it",
	    "* CAPABILITY IMAP4rev1 STARTTLS\r \n",
	    "* CAPABILITY IMAP4rev1\n");
	filter("untagged CAPABILITY filtered",
	    "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN\r\n",
	    "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
	filter("CAPABILITY code in untagged OK filtered",
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS AUTH=PLAIN "
	    "LOGINDISABLED] Dovecot ready.\r\n",
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot "
	    "ready.\r\n");
	filter("CAPABILITY code in tagged OK filtered",
	    "a1 OK [CAPABILITY IMAP4rev1 IDLE STARTTLS] Logged in\r\n",
	    "a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
	filter("channel-binding mechanisms dropped, others kept",
	    "* CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256-PLUS "
	    "AUTH=SCRAM-SHA-256 AUTH=PLAIN\r\n",
	    "* CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256 AUTH=PLAIN\r\n");
	filter("lower case keywords dropped, spelling kept",
	    "* capability imap4rev1 starttls logindisabled "
	    "auth=scram-sha-1-plus Literal+\r\n",
	    "* capability imap4rev1 Literal+\r\n");
	filter("tokens that merely contain STARTTLS kept",
	    "* CAPABILITY XSTARTTLS STARTTLSX X-LOGINDISABLED PLUS "
	    "AUTH=-PLUS\r\n",
	    "* CAPABILITY XSTARTTLS STARTTLSX X-LOGINDISABLED PLUS "
	    "AUTH=-PLUS\r\n");
	filter("line without capabilities copied",
	    "* OK [ALERT] STARTTLS is fine here\r\n",
	    "* OK [ALERT] STARTTLS is fine here\r\n");
	filter("tagged CAPABILITY word is no capability response",
	    "a1 CAPABILITY STARTTLS\r\n", "a1 CAPABILITY STARTTLS\r\n");
	filter("other response code copied",
	    "* OK [CAPABILITYX STARTTLS] hi\r\n",
	    "* OK [CAPABILITYX STARTTLS] hi\r\n");
	filter("list left empty",
	    "* CAPABILITY STARTTLS\r\n", "* CAPABILITY\r\n");
	filter("code left empty", "* OK [CAPABILITY STARTTLS] hi\r\n",
	    "* OK [CAPABILITY] hi\r\n");
	filter("bare LF kept", "* CAPABILITY A STARTTLS B\n",
	    "* CAPABILITY A B\n");
	filter("extra spaces collapsed",
	    "* CAPABILITY  A  STARTTLS   B\r\n", "* CAPABILITY A B\r\n");
	filter("PREAUTH code filtered",
	    "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n",
	    "* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n");
	filter("unclosed code copied", "* OK [CAPABILITY STARTTLS\r\n",
	    "* OK [CAPABILITY STARTTLS\r\n");
	result(imap_filter_caps("* CAPABILITY IMAP4rev1\r\n", 23, small,
	    sizeof(small)) == 0, "output too small refused");
}

static void
literal_tests(void)
{
	literal("synchronising", "a LOGIN {5}\r\n", 1, 5, 1);
	literal("non-synchronising", "a LOGIN {12+}\r\n", 1, 12, 0);
	literal("bare LF", "a LOGIN {7}\n", 1, 7, 1);
	literal("no line end", "a LOGIN {7}", 1, 7, 1);
	literal("zero", "a APPEND x {0}\r\n", 1, 0, 1);
	literal("leading zeros", "a X {0005+}\r\n", 1, 5, 0);
	literal("literal8", "a APPEND x ~{9}\r\n", 1, 9, 1);
	literal("largest 32-bit count", "a X {4294967295}\r\n", 1,
	    4294967295ULL, 1);
	literal("32-bit overflow refused", "a X {4294967296}\r\n", -1, 0,
	    0);
	literal("64-bit overflow refused",
	    "a X {18446744073709551616+}\r\n", -1, 0, 0);
	literal("64-bit wrap to a small count refused",
	    "a X {18446744073709551621}\r\n", -1, 0, 0);
	literal("huge count refused",
	    "a X {99999999999999999999999999999999999999}\r\n", -1, 0, 0);
	literal("empty refused", "a X {}\r\n", -1, 0, 0);
	literal("plus only refused", "a X {+}\r\n", -1, 0, 0);
	literal("leading plus refused", "a X {+5}\r\n", -1, 0, 0);
	literal("leading minus refused", "a X {-5}\r\n", -1, 0, 0);
	literal("non-digit refused", "a X {12a}\r\n", -1, 0, 0);
	literal("space refused", "a X { 5}\r\n", -1, 0, 0);
	literal("trailing space refused", "a X {5 }\r\n", -1, 0, 0);
	literal("double plus refused", "a X {5++}\r\n", -1, 0, 0);
	literal("literal not at the end", "a LOGIN {5} x\r\n", 0, 0, 0);
	literal("space after marker", "a LOGIN {5} \r\n", 0, 0, 0);
	literal("no literal", "a NOOP\r\n", 0, 0, 0);
	literal("brace without opening", "a X y}\r\n", 0, 0, 0);
	literal("empty line", "\r\n", 0, 0, 0);
}

int
main(void)
{
	filter_tests();
	literal_tests();
	printf("1..%d\n", count);
	return failed != 0;
}
