/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The configuration parser, fed the way the programs feed it: a file
 * through cfg_load(), then "-o key=value" settings through cfg_set(),
 * then cfg_finish().  Whatever the input, nothing may crash or leak,
 * every refusal must say where the bad setting came from, and whatever
 * is accepted must be in range, so that the programs can trust struct
 * cfg without checking it again.
 *
 * Input: one byte of flags (bit 0: IMAP rather than SMTP; bit 1: set
 * CREDENTIALS_DIRECTORY; bit 2: skip the file; bits 3-7: if not 0, a
 * short error buffer), then the file, then optionally "\n%%\n" and
 * command line settings separated by NUL bytes.
 */
#define _GNU_SOURCE

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "fuzz.h"

#define FUZZ_SETS_MAX	16
#define FUZZ_ERR_BIG	512

static int fuzz_fd = -1;
static char fuzz_path[64];

/* The file lives in memory: no disk traffic, nothing left behind when
 * a crash ends the run. */
static void
fuzz_write_file(const uint8_t *p, size_t n)
{
	if (fuzz_fd == -1) {
		fuzz_fd = memfd_create("mailgate-fuzz.conf", 0);
		FUZZ_CHECK(fuzz_fd != -1);
		snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d",
		    fuzz_fd);
	}
	FUZZ_CHECK(ftruncate(fuzz_fd, 0) == 0);
	FUZZ_CHECK(n == 0 || pwrite(fuzz_fd, p, n, 0) == (ssize_t)n);
}

/* Whether err starts with "where:". */
static int
fuzz_err_from(const char *err, const char *where)
{
	size_t w = strlen(where);

	return strncmp(err, where, w) == 0 && err[w] == ':';
}

/* A refusal fills err with a line that starts with where it found the
 * fault (where, or else alt if not NULL); a short buffer still ends in
 * NUL. */
static void
fuzz_check_err(const char *err, size_t errlen, const char *where,
    const char *alt)
{
	if (errlen == 0)
		return;
	FUZZ_CHECK(strnlen(err, errlen) < errlen);
	if (errlen == FUZZ_ERR_BIG)
		FUZZ_CHECK(fuzz_err_from(err, where) ||
		    (alt != NULL && fuzz_err_from(err, alt)));
}

static void
fuzz_check_str(const char *s)
{
	FUZZ_CHECK(s == NULL || *s != '\0');
}

static void
fuzz_check_backend(const struct cfg_backend *b)
{
	fuzz_check_str(b->host);
	FUZZ_CHECK(b->port <= 65535);
	FUZZ_CHECK(b->security <= CFG_SEC_NONE);
	FUZZ_CHECK(b->idle_timeout >= 1 && b->idle_timeout <= 86400);
	FUZZ_CHECK(b->login_timeout >= 1 && b->login_timeout <= 86400);
}

/* Every field in the range its setting allows. */
static void
fuzz_check_ranges(const struct cfg *c)
{
	fuzz_check_str(c->cert_file);
	fuzz_check_str(c->key_file);
	fuzz_check_str(c->ca_file);
	fuzz_check_str(c->tls_priority);
	fuzz_check_str(c->backend_tls_priority);
	fuzz_check_str(c->ticket_key);
	fuzz_check_str(c->hostname);
	FUZZ_CHECK(c->allow_plaintext_backend == 0 ||
	    c->allow_plaintext_backend == 1);
	FUZZ_CHECK(c->allow_plaintext_clients == 0 ||
	    c->allow_plaintext_clients == 1);
	FUZZ_CHECK(c->log <= CFG_LOG_STDERR);
	FUZZ_CHECK(c->connect_timeout >= 1 && c->connect_timeout <= 86400);
	FUZZ_CHECK(c->handshake_timeout >= 1 &&
	    c->handshake_timeout <= 86400);
	FUZZ_CHECK(c->max_errors >= 1 && c->max_errors <= 1000);
	fuzz_check_backend(&c->smtp);
	fuzz_check_backend(&c->imap);
}

/* What cfg_finish() accepted is complete: a program can start on it. */
static void
fuzz_check_finished(const struct cfg *c, enum cfg_proto proto)
{
	const struct cfg_backend *b = cfg_backend(c, proto);

	FUZZ_CHECK(b->host != NULL);
	FUZZ_CHECK(c->smtp.port >= 1 && c->imap.port >= 1);
	FUZZ_CHECK(b->security != CFG_SEC_NONE ||
	    c->allow_plaintext_backend);
	FUZZ_CHECK(c->cert_file != NULL && c->key_file != NULL);
	FUZZ_CHECK(strchr(c->key_file, '/') != NULL);
	FUZZ_CHECK(c->ticket_key == NULL ||
	    strchr(c->ticket_key, '/') != NULL);
	FUZZ_CHECK(c->hostname != NULL);
}

/* The setting name a command line argument applied, trimmed as the
 * parser trims it; empty if it has no "=". */
static void
fuzz_set_name(const char *kv, char *name, size_t size)
{
	const char *eq = strchr(kv, '='), *e;

	name[0] = '\0';
	if (eq == NULL)
		return;
	while (kv < eq && (*kv == ' ' || (*kv >= '\t' && *kv <= '\r')))
		kv++;
	for (e = eq; e > kv && (e[-1] == ' ' ||
	    (e[-1] >= '\t' && e[-1] <= '\r')); e--)
		;
	snprintf(name, size, "%.*s", (int)(e - kv), kv);
}

/*
 * A value that is wrong must be blamed on where it was set: an admin
 * who is told that the file is at fault edits the file and finds
 * nothing there.  set[] lists the names the command line set.
 */
static void
fuzz_check_blame(const char *err, char set[][64], int nset)
{
	const char *name, *colon;
	int i;

	if (strncmp(err, "command line: ", 14) == 0 ||
	    strstr(err, ": not set") != NULL)
		return;
	if ((name = strstr(err, ": ")) == NULL)
		return;
	name += 2;
	if ((colon = strstr(name, ": ")) == NULL)
		return;
	for (i = 0; i < nset; i++)
		FUZZ_CHECK(strlen(set[i]) != (size_t)(colon - name) ||
		    strncmp(set[i], name, colon - name) != 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char set[FUZZ_SETS_MAX][64];
	enum cfg_proto proto;
	const uint8_t *sep, *p, *end;
	size_t errlen, flen;
	struct cfg c;
	char *err, *kv;
	int nset = 0, file, nargs = 0, ok = 1;

	if (size < 1)
		return 0;
	proto = data[0] & 1 ? CFG_PROTO_IMAP : CFG_PROTO_SMTP;
	if (data[0] & 2)
		setenv("CREDENTIALS_DIRECTORY", "/run/credentials/fuzz", 1);
	else
		unsetenv("CREDENTIALS_DIRECTORY");
	file = !(data[0] & 4);
	errlen = data[0] >> 3 ? (size_t)(data[0] >> 3) - 1 : FUZZ_ERR_BIG;
	err = malloc(errlen ? errlen : 1);
	FUZZ_CHECK(err != NULL);

	p = data + 1;
	end = data + size;
	sep = memmem(p, end - p, "\n%%\n", 4);
	flen = (sep != NULL ? sep : end) - p;

	cfg_init(&c);
	if (file) {
		fuzz_write_file(p, flen);
		if (cfg_load(&c, fuzz_path, 1, err, errlen) == -1) {
			fuzz_check_err(err, errlen, fuzz_path, NULL);
			ok = 0;
		}
	}

	/* Settings from the command line, each a NUL-terminated copy so
	 * that ASan sees a read past its end. */
	for (p = sep != NULL ? sep + 4 : end; ok && p < end &&
	    nargs < FUZZ_SETS_MAX; nargs++) {
		sep = memchr(p, '\0', end - p);
		flen = (sep != NULL ? sep : end) - p;
		kv = strndup((const char *)p, flen);
		FUZZ_CHECK(kv != NULL);
		if (cfg_set(&c, kv, err, errlen) == -1) {
			fuzz_check_err(err, errlen, "command line", NULL);
			ok = 0;
		} else if (nset < FUZZ_SETS_MAX)
			fuzz_set_name(kv, set[nset++], sizeof(set[0]));
		free(kv);
		p += flen + 1;
	}
	fuzz_check_ranges(&c);

	if (ok && cfg_finish(&c, proto, err, errlen) == 0) {
		fuzz_check_ranges(&c);
		fuzz_check_finished(&c, proto);
	} else if (ok) {
		/* A missing setting is missing from the configuration, a
		 * wrong one came from the file or the command line. */
		if (c.path != NULL)
			fuzz_check_err(err, errlen, c.path, "command line");
		else
			fuzz_check_err(err, errlen, "command line",
			    "configuration");
		if (errlen == FUZZ_ERR_BIG)
			fuzz_check_blame(err, set, nset);
	}
	cfg_free(&c);
	free(err);
	return 0;
}
