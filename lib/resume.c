/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "log.h"
#include "resume.h"

/* A session is not offered once this long has passed since the full
 * handshake it descends from, however often it was resumed and renewed
 * since: the backend's certificate is checked in full at least this
 * often. */
#define RESUME_MAX_AGE	3600
/* Session data of a TLS 1.3 ticket with the peer's chain is a few KB. */
#define RESUME_MAX_SIZE	32768

/*
 * The file: "MGS1", the time of the full handshake (8 bytes, little
 * endian), the SHA-256 of those and the session data, then the data.
 * The checksum keeps a damaged file from ever reaching GnuTLS.
 */
#define RESUME_MAGIC	"MGS1"
#define RESUME_HEAD	(4 + 8 + 32)

/* The cache file for this process's backend, or "" when off. */
static char resume_path[4096];
/* The cache key (the hash of the settings) that names the file; the
 * checksum covers it too, so a file renamed from other settings is not
 * offered. */
static char resume_keyhex[33];
/* When the full handshake behind the session offered was made. */
static int64_t resume_offered_since;

static int
resume_fail(char *why, size_t whylen, const char *dir, const char *text)
{
	snprintf(why, whylen, "backend_session_cache %s: %s", dir, text);
	return -1;
}

/* What a cached session was verified against: this version's built-in
 * rules, the backend's name, port and security, the backend priority
 * and the trust anchors themselves (of a CA file; the system store is
 * named, not read, so a change to it counts only after the hour).
 * Any change gives another file, so a session verified under other
 * settings is never offered. */
static int
resume_key(const struct cfg *c, enum cfg_proto proto, char *hex,
    size_t hexlen)
{
	const struct cfg_backend *be = cfg_backend(c, proto);
	gnutls_hash_hd_t h;
	gnutls_datum_t ca = { NULL, 0 };
	unsigned char d[32];
	char head[600];
	int n, i;

	n = snprintf(head, sizeof(head), "%s\n%s\n%u\n%s\n%s\n%s\n",
	    MAILGATE_VERSION, be->host, be->port,
	    cfg_security_name(be->security),
	    c->backend_tls_priority != NULL ? c->backend_tls_priority : "",
	    c->ca_file != NULL ? "file" : "system");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	if (c->ca_file != NULL && gnutls_load_file(c->ca_file, &ca) < 0)
		return -1;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
		gnutls_free(ca.data);
		return -1;
	}
	gnutls_hash(h, head, (size_t)n);
	if (ca.data != NULL)
		gnutls_hash(h, ca.data, ca.size);
	gnutls_hash_deinit(h, d);
	gnutls_free(ca.data);
	for (i = 0; i < 16 && (size_t)(2 * i + 2) < hexlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return 0;
}

static int
resume_dir_ok(const char *dir, char *why, size_t whylen)
{
	struct stat st;

	if (stat(dir, &st) == -1)
		return resume_fail(why, whylen, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return resume_fail(why, whylen, dir, "not a directory");

	/* Whoever can write here can make us skip the backend's
	 * certificate: only we may. */
	if (st.st_uid != geteuid())
		return resume_fail(why, whylen, dir, "not owned by the "
		    "user the gateway runs as");
	if ((st.st_mode & 077) != 0)
		return resume_fail(why, whylen, dir, "open to group or "
		    "others (must be mode 0700)");
	if (access(dir, W_OK | X_OK) == -1)
		return resume_fail(why, whylen, dir, strerror(errno));
	return 0;
}

int
resume_setup(const struct cfg *c, enum cfg_proto proto, int strict,
    char *why, size_t whylen)
{
	const char *dir = c->backend_session_cache;

	resume_path[0] = '\0';
	if (dir == NULL || cfg_backend(c, proto)->security == CFG_SEC_NONE)
		return 0;
	if (dir[0] != '/')
		return resume_fail(why, whylen, dir, "not an absolute path");
	if (resume_key(c, proto, resume_keyhex, sizeof(resume_keyhex)) == -1)
		return resume_fail(why, whylen, dir, "cannot derive the "
		    "cache key");

	/* The cache is an optimisation, and going without it is always
	 * safe: a directory that is missing or not private is refused
	 * by a configuration check, but a running service only says so
	 * and makes full handshakes. */
	if (resume_dir_ok(dir, why, whylen) == -1) {
		if (strict)
			return -1;
		log_msg(LOG_WARNING, "event=warning %s; backend sessions "
		    "are not resumed", why);
		return 0;
	}
	if ((size_t)snprintf(resume_path, sizeof(resume_path), "%s/%s-%s",
	    dir, proto == CFG_PROTO_IMAP ? "imap" : "smtp", resume_keyhex) >=
	    sizeof(resume_path)) {
		resume_path[0] = '\0';
		return resume_fail(why, whylen, dir, "path too long");
	}
	return 0;
}

/* SHA-256 over the magic, the time, the cache key and the session
 * data. */
static void
resume_digest(const unsigned char *head, const unsigned char *data,
    size_t len, unsigned char *d)
{
	gnutls_hash_hd_t h;

	memset(d, 0, 32);
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return;
	gnutls_hash(h, head, 12);
	gnutls_hash(h, resume_keyhex, strlen(resume_keyhex));
	gnutls_hash(h, data, len);
	gnutls_hash_deinit(h, d);
}

static uint64_t
resume_get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int
resume_load(gnutls_session_t s)
{
	unsigned char buf[RESUME_HEAD + RESUME_MAX_SIZE], d[32];
	time_t now = time(NULL);
	struct stat st;
	int64_t since;
	ssize_t n;
	int fd, r = 0;

	resume_offered_since = 0;
	if (resume_path[0] == '\0')
		return 0;
	/* Non-blocking: a FIFO planted here must not hang us. */
	fd = open(resume_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0 ||
	    st.st_size <= RESUME_HEAD ||
	    st.st_size > (off_t)sizeof(buf)) {
		log_msg(LOG_DEBUG, "event=resume-skipped reason=\"cache file "
		    "not a private regular file of ours, or of a wrong "
		    "size\"");
		close(fd);
		return 0;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != st.st_size || memcmp(buf, RESUME_MAGIC, 4) != 0) {
		log_msg(LOG_DEBUG, "event=resume-skipped reason=\"not a "
		    "cache file\"");
		goto out;
	}
	since = (int64_t)resume_get64(buf + 4);
	resume_digest(buf, buf + RESUME_HEAD, (size_t)n - RESUME_HEAD, d);
	if (memcmp(d, buf + 12, sizeof(d)) != 0) {
		log_msg(LOG_DEBUG, "event=resume-skipped reason=\"cache file "
		    "damaged or from other settings\"");
		goto out;
	}
	if (since > (int64_t)now || (int64_t)now - since > RESUME_MAX_AGE) {
		log_msg(LOG_DEBUG, "event=resume-skipped reason=\"full "
		    "handshake more than an hour ago\"");
		goto out;
	}
	if (gnutls_session_set_data(s, buf + RESUME_HEAD,
	    (size_t)n - RESUME_HEAD) < 0) {
		log_msg(LOG_DEBUG, "event=resume-skipped reason=\"cached "
		    "session not usable\"");
		r = -1;
		goto out;
	}
	resume_offered_since = since;
out:
	gnutls_memset(buf, 0, sizeof(buf));
	return r;
}

/* Write the session's resumption data: a new file, then rename, so
 * that concurrent instances never read half of one.  A session that
 * was itself resumed keeps the time of the full handshake it descends
 * from. */
static void
resume_save(gnutls_session_t s)
{
	char tmp[sizeof(resume_path) + 32];
	unsigned char head[RESUME_HEAD];
	gnutls_datum_t d = { NULL, 0 };
	uint64_t since = (uint64_t)time(NULL);
	ssize_t n = -1;
	int fd, i, saved = 0;

	if (resume_path[0] == '\0')
		return;
	if (gnutls_session_is_resumed(s)) {
		if (resume_offered_since == 0)
			return;
		since = (uint64_t)resume_offered_since;
	}
	if (gnutls_session_get_data2(s, &d) < 0 || d.size == 0 ||
	    d.size > RESUME_MAX_SIZE) {
		gnutls_free(d.data);
		return;
	}
	memcpy(head, RESUME_MAGIC, 4);
	for (i = 0; i < 8; i++)
		head[4 + i] = (unsigned char)(since >> (8 * i));
	resume_digest(head, d.data, d.size, head + 12);

	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", resume_path,
	    (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd != -1) {
		if (write(fd, head, sizeof(head)) == (ssize_t)sizeof(head))
			n = write(fd, d.data, d.size);
		if (close(fd) == 0 && n == (ssize_t)d.size &&
		    rename(tmp, resume_path) == 0)
			saved = 1;
		else
			unlink(tmp);
	}
	if (!saved)
		log_msg(LOG_WARNING, "event=warning backend_session_cache: "
		    "cannot save the session: %s", n >= 0 && n < (ssize_t)d.size ?
		    "short write" : strerror(errno));
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
}

/* TLS 1.3 hands out tickets after the handshake. */
static int
resume_on_ticket(gnutls_session_t s, unsigned htype, unsigned when,
    unsigned incoming, const gnutls_datum_t *msg)
{
	(void)htype;
	(void)msg;
	if (when == GNUTLS_HOOK_POST && incoming)
		resume_save(s);
	return 0;
}

void
resume_watch(gnutls_session_t s)
{
	if (resume_path[0] == '\0')
		return;
	gnutls_handshake_set_hook_function(s,
	    GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST,
	    resume_on_ticket);
}

void
resume_handshake_done(gnutls_session_t s)
{
	/* Before TLS 1.3 the session is resumable as the handshake
	 * ends; a resumed one is already in the cache. */
	if (resume_path[0] == '\0' || gnutls_session_is_resumed(s) ||
	    gnutls_protocol_get_version(s) == GNUTLS_TLS1_3)
		return;
	resume_save(s);
}
