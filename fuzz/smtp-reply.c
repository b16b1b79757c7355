/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * smtp_reply_line_ok() decides which backend lines may form a reply.  A
 * wrong "yes" would let a line whose code was misread reach the client,
 * so it is compared with the rule spelled out a second time, plainly.
 *
 * Input: two bytes that choose the expected code (0, meaning any, or
 * 0..999), then the line.
 */
#include <string.h>

#include "fuzz.h"
#include "smtp.h"

static int
fuzz_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int
fuzz_expect(const char *p, size_t n, int code)
{
	int c;

	if (n < 4 || !fuzz_digit(p[0]) || !fuzz_digit(p[1]) ||
	    !fuzz_digit(p[2]))
		return 0;
	c = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (code != 0 && c != code)
		return 0;
	return strchr("- \r\n", p[3]) != NULL && p[3] != '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line;
	size_t n;
	int code, got;

	if (size < 2)
		return 0;
	code = (data[0] << 8 | data[1]) % 1000;
	line = (const char *)data + 2;
	n = size - 2;

	/* The line is the tail of libFuzzer's exact-size copy, so ASan
	 * catches any read past n. */
	got = smtp_reply_line_ok(line, n, code);
	FUZZ_CHECK(got == 0 || got == 1);
	FUZZ_CHECK(got == fuzz_expect(line, n, code));

	/* Any code accepts whatever one particular code accepts. */
	if (got)
		FUZZ_CHECK(smtp_reply_line_ok(line, n, 0) == 1);
	return 0;
}
