/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "log.h"
#include "resume.h"

/* A session older than this is not offered, whatever its ticket says:
 * the backend's certificate is checked in full at least this often. */
#define RESUME_MAX_AGE	3600
/* Session data of a TLS 1.3 ticket with the peer's chain is a few KB. */
#define RESUME_MAX_SIZE	32768

/* The cache file for this process's backend, or "" when off. */
static char resume_path[4096];

static int
resume_fail(char *why, size_t whylen, const char *dir, const char *text)
{
	snprintf(why, whylen, "backend_session_cache %s: %s", dir, text);
	return -1;
}

/* What a cached session was verified against: the backend's name, port
 * and security, the backend priority and the trust anchors themselves.
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

	n = snprintf(head, sizeof(head), "%s\n%u\n%s\n%s\n%s\n", be->host,
	    be->port, cfg_security_name(be->security),
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

int
resume_setup(const struct cfg *c, enum cfg_proto proto, char *why,
    size_t whylen)
{
	const char *dir = c->backend_session_cache;
	struct stat st;
	char key[33];

	resume_path[0] = '\0';
	if (dir == NULL || cfg_backend(c, proto)->security == CFG_SEC_NONE)
		return 0;
	if (dir[0] != '/')
		return resume_fail(why, whylen, dir, "not an absolute path");
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
	if (resume_key(c, proto, key, sizeof(key)) == -1)
		return resume_fail(why, whylen, dir, "cannot derive the "
		    "cache key");
	if ((size_t)snprintf(resume_path, sizeof(resume_path), "%s/%s-%s",
	    dir, proto == CFG_PROTO_IMAP ? "imap" : "smtp", key) >=
	    sizeof(resume_path)) {
		resume_path[0] = '\0';
		return resume_fail(why, whylen, dir, "path too long");
	}
	return 0;
}

void
resume_load(gnutls_session_t s)
{
	unsigned char buf[RESUME_MAX_SIZE];
	gnutls_datum_t d;
	struct stat st;
	ssize_t n;
	int fd;

	if (resume_path[0] == '\0')
		return;
	fd = open(resume_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0 ||
	    st.st_size <= 0 || st.st_size > RESUME_MAX_SIZE ||
	    time(NULL) - st.st_mtime > RESUME_MAX_AGE ||
	    time(NULL) < st.st_mtime) {
		close(fd);
		return;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != st.st_size)
		return;
	d.data = buf;
	d.size = (unsigned)n;
	if (gnutls_session_set_data(s, d.data, d.size) < 0)
		log_msg(LOG_DEBUG, "event=resume-skipped reason=\"cached "
		    "session not usable\"");
	gnutls_memset(buf, 0, sizeof(buf));
}

/* Write the session's resumption data: a new file, then rename, so
 * that concurrent instances never read half of one. */
static void
resume_save(gnutls_session_t s)
{
	char tmp[sizeof(resume_path) + 32];
	gnutls_datum_t d = { NULL, 0 };
	ssize_t n;
	int fd;

	if (resume_path[0] == '\0' ||
	    gnutls_session_get_data2(s, &d) < 0 || d.size == 0 ||
	    d.size > RESUME_MAX_SIZE) {
		gnutls_free(d.data);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", resume_path,
	    (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd != -1) {
		n = write(fd, d.data, d.size);
		if (close(fd) == 0 && n == (ssize_t)d.size &&
		    rename(tmp, resume_path) == 0)
			fd = -2;
		else
			unlink(tmp);
	}
	if (fd != -2)
		log_msg(LOG_DEBUG, "event=resume-not-saved reason=\"%s\"",
		    strerror(errno));
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
