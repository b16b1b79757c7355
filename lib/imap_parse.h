/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_IMAP_PARSE_H
#define MAILGATE_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * IMAP syntax, without I/O: command and response lines, literal
 * markers and capability lists.  Pure functions, so that unit tests and
 * fuzzers can drive them directly.
 */

#define IMAP_TAG_MAX	64
#define IMAP_CAPS_MAX	4096

/* Largest literal count accepted: RFC 3501 makes number a 32-bit
 * value, and nothing before login needs more. */
#define IMAP_LITERAL_MAX	4294967295ULL

enum imap_verb {
	IMAP_OTHER = 0,
	IMAP_CAPABILITY,
	IMAP_NOOP,
	IMAP_LOGOUT,
	IMAP_ID,
	IMAP_STARTTLS,
	IMAP_LOGIN,
	IMAP_AUTHENTICATE
};


enum imap_status {
	IMAP_ST_NONE = 0,	/* not a response with the tag looked for */
	IMAP_ST_OK,
	IMAP_ST_NO,
	IMAP_ST_BAD,
	IMAP_ST_PREAUTH,
	IMAP_ST_BYE,
	IMAP_ST_OTHER
};

/* A client command line: its tag, verb and where its arguments start. */
struct imap_cmd {
	char tag[IMAP_TAG_MAX + 1];
	enum imap_verb verb;
	size_t args;
	int has_args;
};

/*
 * Whether a line (len bytes, with or without its CRLF or LF) ends in a
 * literal marker: "{N}" (synchronising, *sync = 1) or "{N+}"
 * (non-synchronising, RFC 7888, *sync = 0), with N in *count.
 * Returns 1 if it does, 0 if the line does not end in '}' after a '{',
 * and -1 if it does but the marker is not a valid literal: empty, a
 * sign or space, any non-digit, or N above IMAP_LITERAL_MAX.  A peer
 * may read such a marker as a literal of some size, so a caller must
 * never treat -1 as plain text.
 */
int imap_literal_at_end(const char *line, size_t len, uint64_t *count,
    int *sync);

/*
 * Copy one response line (in, len) into out, filtering its capability
 * list if it has one: "* CAPABILITY ...", or a "[CAPABILITY ...]"
 * response code in a status response (OK, NO, BAD, PREAUTH, BYE,
 * tagged or not).  STARTTLS, LOGINDISABLED and AUTH=<mech>-PLUS are
 * removed, whatever their case; everything else keeps its order and
 * spelling, one space apart.  Other lines are copied unchanged.
 * Returns the length written, or 0 if out is too small.
 */
size_t imap_filter_caps(const char *in, size_t len, char *out,
    size_t outlen);

/* Length of a line without its CRLF or LF. */
size_t imap_text_end(const char *p, size_t n);

/* imap_filter_caps(), optionally adding STARTTLS to the list for a
 * client that has not started TLS yet. */
size_t imap_filter_line(const char *in, size_t len, char *out,
    size_t outlen, int add_starttls);

/* The filtered capability list of a line, NUL-terminated, for our own
 * greeting; left unchanged if the line has none or one that could not
 * be repeated safely. */
void imap_caps_copy(const char *line, size_t n, char *caps,
    size_t capslen);

/* The status word of a response tagged with tag ("*" for untagged);
 * IMAP_ST_NONE if the line does not carry that tag. */
enum imap_status imap_tagged_status(const char *p, size_t n,
    const char *tag);

/* Whether a line is an untagged response. */
int imap_is_untagged(const char *p, size_t n);

/* Split a client command line.  Returns -1 if it has no valid tag. */
int imap_parse_command(const char *p, size_t n, struct imap_cmd *c);

#endif
