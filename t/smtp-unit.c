/* SPDX-License-Identifier: GPL-3.0-or-later */
/* EHLO reply filtering, checked against exact expected bytes. */
#include <stdio.h>
#include <string.h>

#include "smtp.h"

static int failed, count;

static void
check(const char *name, const char *in, int add, const char *want)
{
	char out[4096];
	size_t n = smtp_ehlo_filter(in, strlen(in), out, sizeof(out), add);

	count++;
	if ((want == NULL && n == 0) || (want != NULL && n ==
	    strlen(want) && memcmp(out, want, n) == 0)) {
		printf("ok %d - %s\n", count, name);
		return;
	}
	failed++;
	printf("not ok %d - %s\n# got: %.*s\n# want: %s\n", count, name,
	    (int)n, out, want ? want : "(refused)");
}

/* A reply whose filtered form fills the output exactly must pass,
 * even when a whole AUTH line is dropped on the way. */
static void
check_exact_fit(void)
{
	static const char in[] = "250-x.example\r\n"
	    "250-AUTH SCRAM-SHA-256-PLUS\r\n250 STARTTLS\r\n";
	static const char want[] = "250 x.example\r\n";
	char out[sizeof(want) - 1];
	size_t n = smtp_ehlo_filter(in, strlen(in), out, sizeof(out), 0);

	count++;
	if (n == sizeof(out) && memcmp(out, want, n) == 0) {
		printf("ok %d - exact fit with an AUTH line dropped\n", count);
		return;
	}
	failed++;
	printf("not ok %d - exact fit with an AUTH line dropped\n", count);
}

int
main(void)
{
	check("STARTTLS dropped and last line made final",
	    "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n", 0,
	    "250-mx.test\r\n250 PIPELINING\r\n");
	check("PLUS mechanisms dropped, both AUTH spellings kept",
	    "250-mx\r\n250-AUTH PLAIN SCRAM-SHA-256-PLUS LOGIN\r\n"
	    "250-AUTH=PLAIN scram-sha-1-plus\r\n250 8BITMIME\r\n", 0,
	    "250-mx\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN\r\n"
	    "250 8BITMIME\r\n");
	check("AUTH line with only PLUS mechanisms dropped",
	    "250-mx\r\n250-AUTH SCRAM-SHA-1-PLUS\r\n250 SIZE 100\r\n", 0,
	    "250-mx\r\n250 SIZE 100\r\n");
	check("single-line reply stays single",
	    "250 mx.test\r\n", 0, "250 mx.test\r\n");
	check("STARTTLS added for a plaintext client",
	    "250-mx\r\n250 SIZE 1\r\n", 1,
	    "250-mx\r\n250-SIZE 1\r\n250 STARTTLS\r\n");
	check("bare LF lines read, CRLF written",
	    "250-mx\n250 STARTTLS\n", 0, "250 mx\r\n");
	check("lower-case starttls dropped",
	    "250-mx\r\n250-starttls\r\n250 DSN\r\n", 0,
	    "250-mx\r\n250 DSN\r\n");
	check("unfinished reply refused",
	    "250-mx\r\n250-DSN\r\n", 0, NULL);
	check("bytes after the final line refused",
	    "250 mx\r\n250 DSN\r\n", 0, NULL);
	check("other code refused", "250-mx\r\n550 no\r\n", 0, NULL);
	check("missing line end refused", "250 mx", 0, NULL);
	check("STARTTLS as a prefix of another word kept",
	    "250-mx\r\n250 STARTTLSX\r\n", 0, "250-mx\r\n250 STARTTLSX\r\n");
	check("STARTTLS with a parameter dropped",
	    "250-mx\r\n250-STARTTLS now\r\n250 DSN\r\n", 0,
	    "250-mx\r\n250 DSN\r\n");
	check_exact_fit();
	printf("1..%d\n", count);
	return failed != 0;
}
