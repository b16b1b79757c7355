/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "clock.h"
#include "io.h"
#include "tls.h"

/*
 * Built-in priorities, appended to the library's default so that a
 * system-wide GnuTLS policy still applies ("@SYSTEM" alone fails where
 * no such policy file is installed).  The client leg lets our order
 * win, which keeps AES-GCM ahead of ChaCha20 on hardware with AES
 * instructions; bulk mail is several times faster that way.  X25519
 * comes first among the groups: it is what clients send a key share
 * for, so a server that prefers P-256 asks them to start over (a
 * HelloRetryRequest, one more round trip), and it is the cheaper key
 * exchange on either leg.  The backend leg adds a verification
 * profile, because the library default still accepts RSA keys of 1024
 * bits.
 */
#define TLS_GROUPS \
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-X448:" \
	"+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-FFDHE2048:" \
	"+GROUP-FFDHE3072:+GROUP-FFDHE4096"
#define TLS_SERVER_APPEND \
	"-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" TLS_GROUPS ":%SERVER_PRECEDENCE"
#define TLS_BACKEND_APPEND \
	"-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" TLS_GROUPS ":%PROFILE_MEDIUM"

/* Longest DNS name (253) plus a trailing dot and the NUL. */
#define TLS_HOST_MAX 255

static gnutls_certificate_credentials_t tls_server_cred;
static gnutls_priority_t tls_server_prio;
static gnutls_certificate_credentials_t tls_backend_cred;
static gnutls_priority_t tls_backend_prio;
/* Shared by every instance, so that a client can resume a session in
 * the next process; empty when no ticket_key is configured. */
static gnutls_datum_t tls_ticket_key;
/* Why the backend's certificate failed, for the log: the verification
 * status, or no subject alternative name. */
static unsigned tls_verify_status;
static int tls_san_missing;

/* GnuTLS's ticket master key size. */
#define TLS_TICKET_KEY_SIZE 64

/*
 * GnuTLS keeps pointers to the verification data rather than copies,
 * and reads them during the handshake.  The process has at most one
 * backend session, so static storage outlives it.
 */
static char tls_backend_name[TLS_HOST_MAX];
static unsigned char tls_backend_addr[16];
static gnutls_typed_vdata_st tls_backend_vdata[2];

/* Say why a file could not be used, preferring the system's reason
 * (missing, unreadable) over GnuTLS's generic "error in file". */
static void
tls_file_why(const char *what, const char *path, int r, char *why,
    size_t whylen)
{
	if (r == GNUTLS_E_FILE_ERROR && access(path, R_OK) == -1) {
		snprintf(why, whylen, "%s %s: %s", what, path,
		    strerror(errno));
		return;
	}
	snprintf(why, whylen, "%s %s: %s", what, path, gnutls_strerror(r));
}

static void
tls_priority_free(gnutls_priority_t *p)
{
	if (*p != NULL) {
		gnutls_priority_deinit(*p);
		*p = NULL;
	}
}

static void
tls_cred_free(gnutls_certificate_credentials_t *cred)
{
	if (*cred != NULL) {
		gnutls_certificate_free_credentials(*cred);
		*cred = NULL;
	}
}

/* An administrator's string is used as written, so one for the backend
 * leg must name its own verification profile (a plain "NORMAL" accepts
 * RSA-1024 again); otherwise the built-in restrictions are appended to
 * the library default. */
static int
tls_priority_load(gnutls_priority_t *p, const char *custom,
    const char *setting, const char *append, char *why, size_t whylen)
{
	const char *errpos = NULL;
	int r;

	tls_priority_free(p);
	if (custom == NULL) {
		r = gnutls_priority_init2(p, append, &errpos,
		    GNUTLS_PRIORITY_INIT_DEF_APPEND);
		if (r < 0) {
			*p = NULL;
			snprintf(why, whylen, "built-in %s: %s", setting,
			    gnutls_strerror(r));
			return -1;
		}
		return 0;
	}

	r = gnutls_priority_init2(p, custom, &errpos, 0);
	if (r < 0) {
		*p = NULL;
		if (errpos != NULL && errpos >= custom &&
		    errpos <= custom + strlen(custom))
			snprintf(why, whylen, "%s: error at offset %d (\"%s\"):"
			    " %s", setting, (int)(errpos - custom), errpos,
			    gnutls_strerror(r));
		else
			snprintf(why, whylen, "%s: %s", setting,
			    gnutls_strerror(r));
		return -1;
	}
	return 0;
}

/* Read a whole file; on failure name it. */
static int
tls_read_file(const char *what, const char *path, gnutls_datum_t *d,
    char *why, size_t whylen)
{
	int r;

	if (path == NULL) {
		snprintf(why, whylen, "no %s configured", what);
		return -1;
	}
	r = gnutls_load_file(path, d);
	if (r < 0) {
		tls_file_why(what, path, r, why, whylen);
		return -1;
	}
	return 0;
}

/* Parse the gateway's chain.  An unordered file is refused here because
 * clients would otherwise receive a chain they cannot build. */
static int
tls_load_chain(const char *path, gnutls_x509_crt_t **list, unsigned *n,
    char *why, size_t whylen)
{
	gnutls_datum_t d = { NULL, 0 };
	int r;

	if (tls_read_file("cert", path, &d, why, whylen) == -1)
		return -1;
	r = gnutls_x509_crt_list_import2(list, n, &d, GNUTLS_X509_FMT_PEM,
	    GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	gnutls_free(d.data);
	if (r < 0) {
		tls_file_why("cert", path, r, why, whylen);
		return -1;
	}
	if (*n == 0) {
		gnutls_free(*list);
		snprintf(why, whylen, "cert %s: no certificate",
		    path);
		return -1;
	}
	return 0;
}

static void
tls_chain_free(gnutls_x509_crt_t *list, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
}

/* Parse the private key.  The file's bytes are wiped before they are
 * freed so that no copy of the key lingers in the heap. */
static int
tls_load_key(const char *path, gnutls_x509_privkey_t *key, char *why,
    size_t whylen)
{
	gnutls_datum_t d = { NULL, 0 };
	int r;

	if (tls_read_file("key", path, &d, why, whylen) == -1)
		return -1;
	r = gnutls_x509_privkey_init(key);
	if (r == 0) {
		r = gnutls_x509_privkey_import2(*key, &d, GNUTLS_X509_FMT_PEM,
		    NULL, 0);
		if (r < 0)
			gnutls_x509_privkey_deinit(*key);
	}
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
	if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
		snprintf(why, whylen, "key %s: no private key", path);
		return -1;
	}
	if (r < 0) {
		tls_file_why("key", path, r, why, whylen);
		return -1;
	}
	return 0;
}

static void
tls_format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

/* Clients would refuse an expired or not yet valid certificate anyway,
 * each with its own cryptic message; saying so at start is clearer. */
static int
tls_check_validity(gnutls_x509_crt_t crt, const char *path, char *why,
    size_t whylen)
{
	time_t now = time(NULL);
	time_t start = gnutls_x509_crt_get_activation_time(crt);
	time_t end = gnutls_x509_crt_get_expiration_time(crt);
	char date[64];

	if (start == (time_t)-1) {
		snprintf(why, whylen, "cert %s: unreadable "
		    "activation time", path);
		return -1;
	}
	if (now < start) {
		tls_format_time(start, date, sizeof(date));
		snprintf(why, whylen, "cert %s: not valid "
		    "before %s", path, date);
		return -1;
	}

	/* (time_t)-1 also stands for "no well-defined expiration". */
	if (end != (time_t)-1 && now > end) {
		tls_format_time(end, date, sizeof(date));
		snprintf(why, whylen, "cert %s: expired on %s",
		    path, date);
		return -1;
	}
	return 0;
}

/* 1 if key is the private half of crt's public key: the SHA-256 of
 * both public keys (SubjectPublicKeyInfo) compared; 0 if not, -1 if
 * either cannot be read. */
static int
tls_key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	unsigned char a[32], b[32];
	size_t alen = sizeof(a), blen = sizeof(b);

	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a,
	    &alen) < 0 || gnutls_x509_privkey_get_key_id(key,
	    GNUTLS_KEYID_USE_SHA256, b, &blen) < 0)
		return -1;
	return alen == blen && memcmp(a, b, alen) == 0;
}

static int
tls_server_cred_set(const struct cfg *c, gnutls_x509_crt_t *list,
    unsigned n, gnutls_x509_privkey_t key, char *why, size_t whylen)
{
	int r;

	r = gnutls_certificate_allocate_credentials(&tls_server_cred);
	if (r < 0) {
		tls_server_cred = NULL;
		snprintf(why, whylen, "TLS credentials: %s",
		    gnutls_strerror(r));
		return -1;
	}
	/* A key whose private part does not make its own public part
	 * could never sign a handshake. */
	r = gnutls_x509_privkey_verify_params(key);
	if (r < 0) {
		snprintf(why, whylen, "key %s: the private key is "
		    "inconsistent (%s)", c->key_file, gnutls_strerror(r));
		return -1;
	}

	/* GnuTLS checks the pair by signing and verifying, about half
	 * of a connection's start-up CPU with a P-256 key.  A consistent
	 * key whose public part is the certificate's is the same proof;
	 * where the public parts differ (also when only the algorithm
	 * is written differently, RSA-PSS and RSA), GnuTLS decides. */
	if (tls_key_matches(list[0], key) == 1)
		gnutls_certificate_set_flags(tls_server_cred,
		    GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
	r = gnutls_certificate_set_x509_key(tls_server_cred, list, n, key);
	if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		snprintf(why, whylen, "key %s does not match "
		    "cert %s", c->key_file, c->cert_file);
		return -1;
	}
	if (r < 0) {
		snprintf(why, whylen, "cert %s, key %s: %s",
		    c->cert_file, c->key_file, gnutls_strerror(r));
		return -1;
	}
	return 0;
}

/* The ticket key is a secret like the private key: the gateway reads
 * it, never writes it, and GnuTLS derives rotating keys from it. */
static int
tls_ticket_load(const char *path, char *why, size_t whylen)
{
	if (tls_ticket_key.data != NULL) {
		gnutls_memset(tls_ticket_key.data, 0, tls_ticket_key.size);
		gnutls_free(tls_ticket_key.data);
		tls_ticket_key.data = NULL;
	}
	if (path == NULL)
		return 0;
	if (tls_read_file("ticket_key", path, &tls_ticket_key, why,
	    whylen) == -1)
		return -1;
	if (tls_ticket_key.size == TLS_TICKET_KEY_SIZE)
		return 0;
	snprintf(why, whylen, "ticket_key %s: %u bytes, must be %d "
	    "random bytes (head -c %d /dev/urandom)", path,
	    tls_ticket_key.size, TLS_TICKET_KEY_SIZE, TLS_TICKET_KEY_SIZE);
	gnutls_memset(tls_ticket_key.data, 0, tls_ticket_key.size);
	gnutls_free(tls_ticket_key.data);
	tls_ticket_key.data = NULL;
	return -1;
}

int
tls_server_load(const struct cfg *c, char *why, size_t whylen)
{
	gnutls_x509_crt_t *list = NULL;
	gnutls_x509_privkey_t key = NULL;
	unsigned n = 0;
	int rc = -1;

	tls_cred_free(&tls_server_cred);
	if (tls_priority_load(&tls_server_prio, c->tls_priority,
	    "tls_priority", TLS_SERVER_APPEND, why, whylen) == -1)
		return -1;
	if (tls_ticket_load(c->ticket_key, why, whylen) == -1 ||
	    tls_load_chain(c->cert_file, &list, &n, why, whylen) == -1)
		return -1;
	if (tls_load_key(c->key_file, &key, why, whylen) == -1)
		goto out;

	if (tls_server_cred_set(c, list, n, key, why, whylen) == 0 &&
	    tls_check_validity(list[0], c->cert_file, why, whylen) == 0)
		rc = 0;
	gnutls_x509_privkey_deinit(key);
out:
	tls_chain_free(list, n);
	if (rc == -1)
		tls_cred_free(&tls_server_cred);
	return rc;
}

/* An empty trust store would make every backend fail verification with
 * a misleading "not trusted"; refuse it at start instead. */
static int
tls_backend_trust(const struct cfg *c, char *why, size_t whylen)
{
	int r;

	if (c->ca_file == NULL) {
		r = gnutls_certificate_set_x509_system_trust(tls_backend_cred);
		if (r < 0) {
			snprintf(why, whylen, "ca system: %s",
			    gnutls_strerror(r));
			return -1;
		}
		if (r == 0) {
			snprintf(why, whylen, "ca system: no "
			    "certificates");
			return -1;
		}
		return 0;
	}

	r = gnutls_certificate_set_x509_trust_file(tls_backend_cred,
	    c->ca_file, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		tls_file_why("ca", c->ca_file, r, why, whylen);
		return -1;
	}
	if (r == 0) {
		snprintf(why, whylen, "ca %s: no certificates",
		    c->ca_file);
		return -1;
	}
	return 0;
}

int
tls_backend_load(const struct cfg *c, char *why, size_t whylen)
{
	int r;

	tls_cred_free(&tls_backend_cred);
	if (tls_priority_load(&tls_backend_prio, c->backend_tls_priority,
	    "backend_tls_priority", TLS_BACKEND_APPEND, why, whylen) == -1)
		return -1;

	r = gnutls_certificate_allocate_credentials(&tls_backend_cred);
	if (r < 0) {
		tls_backend_cred = NULL;
		snprintf(why, whylen, "TLS credentials: %s",
		    gnutls_strerror(r));
		return -1;
	}
	if (tls_backend_trust(c, why, whylen) == -1) {
		tls_cred_free(&tls_backend_cred);
		return -1;
	}
	return 0;
}

/*
 * Transport on plain descriptors.  The library's own uses send(2) and
 * recv(2), which fail on the pipes a shell gives us.  Writes try
 * sendmsg(2) first so that a peer's reset on a socket yields EPIPE
 * rather than SIGPIPE; errno passes EAGAIN and EINTR back to GnuTLS.
 *
 * Reads go through a buffer.  GnuTLS asks for a record's five-byte
 * header and then for its body, one read(2) each, and some servers
 * (Dovecot among them) send records of a few kilobytes: a bulk FETCH
 * would cost a system call per two kilobytes.  One read takes whatever
 * the socket holds instead, up to TLS_READAHEAD bytes.  Nothing is
 * left in the buffer when GnuTLS reports GNUTLS_E_AGAIN, so waiting in
 * poll(2) after that is still right.
 */
#define TLS_READAHEAD	65536

struct tls_transport {
	int rfd, wfd;
	int ended;		/* read(2) returned end of stream */
	size_t off, len;	/* unread bytes: buf[off..off+len) */
	unsigned char buf[TLS_READAHEAD];
};

static ssize_t
tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	const struct tls_transport *t = p;
	struct msghdr m;
	ssize_t n;

	memset(&m, 0, sizeof(m));
	m.msg_iov = (struct iovec *)(uintptr_t)iov;
	m.msg_iovlen = (size_t)iovcnt;
	n = sendmsg(t->wfd, &m, MSG_NOSIGNAL);
	if (n == -1 && errno == ENOTSOCK)
		n = writev(t->wfd, (const struct iovec *)iov, iovcnt);
	return n;
}

static ssize_t
tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_transport *t = p;
	ssize_t n;

	if (t->len == 0) {
		/* A peer that ends its side without close_notify (a plain
		 * half-close) would make GnuTLS invalidate the session,
		 * and then refuse to send the replies still owed to it.
		 * Report "nothing yet" instead and remember the end for
		 * tls_peer_ended(). */
		if (t->ended) {
			errno = EAGAIN;
			return -1;
		}
		n = read(t->rfd, t->buf, sizeof(t->buf));
		if (n == 0) {
			t->ended = 1;
			errno = EAGAIN;
			return -1;
		}
		if (n == -1)
			return -1;
		t->off = 0;
		t->len = (size_t)n;
	}
	if (len > t->len)
		len = t->len;
	memcpy(buf, t->buf + t->off, len);
	t->off += len;
	t->len -= len;
	return (ssize_t)len;
}

static struct tls_transport *
tls_transport(gnutls_session_t s)
{
	return gnutls_transport_get_ptr(s);
}

int
tls_peer_ended(gnutls_session_t s)
{
	const struct tls_transport *t = tls_transport(s);

	return t->ended && t->len == 0;
}

int
tls_buffered(gnutls_session_t s)
{
	return tls_transport(s)->len > 0 ||
	    gnutls_record_check_pending(s) > 0;
}

static int
tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	const struct tls_transport *t = p;
	struct pollfd pfd;
	int timeout = -1;

	if (t->len > 0 || t->ended)
		return 1;
	if (ms != GNUTLS_INDEFINITE_TIMEOUT)
		timeout = ms > INT_MAX ? INT_MAX : (int)ms;
	pfd.fd = t->rfd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, timeout);
}

/* Give back the pages of an empty buffer: an idle connection keeps
 * none of what its last burst of traffic touched. */
void
tls_trim(gnutls_session_t s)
{
	struct tls_transport *t = tls_transport(s);

	if (t->len == 0)
		mem_discard(t->buf, sizeof(t->buf));
}

void
tls_free(gnutls_session_t s)
{
	struct tls_transport *t;

	if (s == NULL)
		return;
	t = tls_transport(s);
	gnutls_deinit(s);
	munmap(t, sizeof(*t));
}

static int
tls_session_new(gnutls_session_t *s, unsigned flags, int rfd, int wfd,
    gnutls_priority_t prio, gnutls_certificate_credentials_t cred,
    char *why, size_t whylen)
{
	struct tls_transport *t;
	int r;

	if (prio == NULL || cred == NULL) {
		snprintf(why, whylen, "TLS session before credentials were "
		    "loaded");
		return -1;
	}
	r = gnutls_init(s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		*s = NULL;
		snprintf(why, whylen, "TLS init: %s", gnutls_strerror(r));
		return -1;
	}
	r = gnutls_priority_set(*s, prio);
	if (r == 0)
		r = gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, cred);
	if (r < 0) {
		snprintf(why, whylen, "TLS session: %s", gnutls_strerror(r));
		gnutls_deinit(*s);
		*s = NULL;
		return -1;
	}

	/* A mapping of its own rather than the heap: the pages are
	 * touched only as far as reads fill them, and not pages that
	 * start-up dirtied and freed. */
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED) {
		snprintf(why, whylen, "TLS session: %s", strerror(errno));
		gnutls_deinit(*s);
		*s = NULL;
		return -1;
	}
	t->rfd = rfd;
	t->wfd = wfd;
	t->ended = 0;
	t->off = t->len = 0;
	gnutls_transport_set_ptr(*s, t);
	gnutls_transport_set_vec_push_function(*s, tls_push);
	gnutls_transport_set_pull_function(*s, tls_pull);
	gnutls_transport_set_pull_timeout_function(*s, tls_pull_timeout);
	return 0;
}

int
tls_server_session(gnutls_session_t *s, int rfd, int wfd, char *why,
    size_t whylen)
{
	/* Tickets sealed with a key of this process alone could never be
	 * used again, since the next connection is another process: do
	 * not spend a message and a key derivation on them. */
	unsigned flags = GNUTLS_SERVER;
	int r;

	if (tls_ticket_key.data == NULL)
		flags |= GNUTLS_NO_TICKETS;
	if (tls_session_new(s, flags, rfd, wfd, tls_server_prio,
	    tls_server_cred, why, whylen) == -1)
		return -1;
	if (tls_ticket_key.data != NULL) {
		r = gnutls_session_ticket_enable_server(*s, &tls_ticket_key);
		if (r < 0) {
			snprintf(why, whylen, "session tickets: %s",
			    gnutls_strerror(r));
			tls_free(*s);
			*s = NULL;
			return -1;
		}
	}

	/* Mail clients authenticate inside the protocol, not with
	 * certificates; asking would only make some of them prompt. */
	gnutls_certificate_server_set_request(*s, GNUTLS_CERT_IGNORE);
	return 0;
}

/* The name to verify: one trailing dot removed, because the root label
 * never appears in a certificate and GnuTLS would not match it. */
static int
tls_backend_name_set(const char *host, char *why, size_t whylen)
{
	size_t len = host != NULL ? strlen(host) : 0;

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len >= sizeof(tls_backend_name)) {
		snprintf(why, whylen, "backend host name is empty or too "
		    "long");
		return -1;
	}
	memcpy(tls_backend_name, host, len);
	tls_backend_name[len] = '\0';
	return 0;
}

/* Whether the peer's certificate names its server in a subject
 * alternative name. */
static int
tls_peer_has_san(gnutls_session_t s)
{
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	unsigned n = 0, i;
	char name[256];
	size_t size;
	int type, found = 0;

	certs = gnutls_certificate_get_peers(s, &n);
	if (certs == NULL || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0)
		for (i = 0; !found; i++) {
			size = sizeof(name);
			type = gnutls_x509_crt_get_subject_alt_name(crt, i,
			    name, &size, NULL);
			if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
				break;
			found = type == GNUTLS_SAN_DNSNAME ||
			    type == GNUTLS_SAN_IPADDRESS;
		}
	gnutls_x509_crt_deinit(crt);
	return found;
}

/*
 * The backend's certificate, checked in the handshake so that a failure
 * ends it before it completes: chain, name or address and key purpose
 * (tls_backend_vdata), the priority's verification profile, and a
 * subject alternative name, since GnuTLS alone would accept a name
 * found only in the common name.
 */
static int
tls_verify_backend(gnutls_session_t s)
{
	unsigned st = 0;

	if (gnutls_certificate_verify_peers(s, tls_backend_vdata, 2, &st) < 0)
		st = GNUTLS_CERT_INVALID;
	if (st != 0) {
		tls_verify_status = st;
		return -1;
	}
	if (!tls_peer_has_san(s)) {
		tls_san_missing = 1;
		return -1;
	}
	return 0;
}
/*
 * An IP literal is matched against the certificate's IP SANs only, as
 * raw bytes, so that it can never match a DNS name or the subject CN.
 * Returns the address length, or 0 for a DNS name.
 */
static unsigned
tls_backend_addr_set(const char *name)
{
	if (inet_pton(AF_INET, name, tls_backend_addr) == 1)
		return 4;
	if (inet_pton(AF_INET6, name, tls_backend_addr) == 1)
		return 16;
	return 0;
}

int
tls_backend_session(gnutls_session_t *s, const char *host, int fd,
    char *why, size_t whylen)
{
	gnutls_typed_vdata_st *vd = tls_backend_vdata;
	unsigned addrlen;
	int r;

	if (tls_backend_name_set(host, why, whylen) == -1)
		return -1;
	if (tls_session_new(s, GNUTLS_CLIENT, fd, fd, tls_backend_prio,
	    tls_backend_cred, why, whylen) == -1)
		return -1;

	addrlen = tls_backend_addr_set(tls_backend_name);
	if (addrlen > 0) {
		vd[0].type = GNUTLS_DT_IP_ADDRESS;
		vd[0].data = tls_backend_addr;
		vd[0].size = addrlen;
	} else {
		/* RFC 6066 section 3: SNI never carries an IP literal;
		 * a name with a colon is some unusual address form. */
		if (strchr(tls_backend_name, ':') == NULL) {
			r = gnutls_server_name_set(*s, GNUTLS_NAME_DNS,
			    tls_backend_name, strlen(tls_backend_name));
			if (r < 0) {
				snprintf(why, whylen, "TLS server name: %s",
				    gnutls_strerror(r));
				tls_close(*s);
				*s = NULL;
				return -1;
			}
		}
		vd[0].type = GNUTLS_DT_DNS_HOSTNAME;
		vd[0].data = (unsigned char *)tls_backend_name;
		vd[0].size = 0;
	}

	/* Without the purpose a certificate issued for client
	 * authentication only would be accepted as a server's. */
	vd[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	vd[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	vd[1].size = 0;
	gnutls_session_set_verify_function(*s, tls_verify_backend);
	return 0;
}

/* True if the peer's chain holds a key weaker than 112-bit security,
 * the floor of the built-in verification profile. */
static int
tls_peer_key_small(gnutls_session_t s)
{
	const gnutls_datum_t *certs;
	unsigned i, n = 0, bits;
	gnutls_x509_crt_t crt;
	int pk, small = 0;

	certs = gnutls_certificate_get_peers(s, &n);
	for (i = 0; certs != NULL && i < n && !small; i++) {
		if (gnutls_x509_crt_init(&crt) < 0)
			return 0;
		if (gnutls_x509_crt_import(crt, &certs[i],
		    GNUTLS_X509_FMT_DER) == 0) {
			bits = 0;
			pk = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
			if (pk >= 0 && gnutls_pk_bits_to_sec_param(
			    (gnutls_pk_algorithm_t)pk, bits) <
			    GNUTLS_SEC_PARAM_MEDIUM)
				small = 1;
		}
		gnutls_x509_crt_deinit(crt);
	}
	return small;
}

/* The main reason first: a chain that is not trusted is not worth
 * judging further, and a clock problem hides everything after it. */
static const char *
tls_status_reason(gnutls_session_t s, unsigned st)
{
	if (st & GNUTLS_CERT_REVOKED)
		return "certificate revoked";
	if (st & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA |
	    GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE))
		return "certificate not trusted";
	if (st & GNUTLS_CERT_EXPIRED)
		return "certificate expired";
	if (st & GNUTLS_CERT_NOT_ACTIVATED)
		return "certificate not yet valid";
	if (st & GNUTLS_CERT_INSECURE_ALGORITHM)
		return tls_peer_key_small(s) ? "certificate key too small" :
		    "certificate signature algorithm insecure";
	if (st & GNUTLS_CERT_PURPOSE_MISMATCH)
		return "certificate key purpose not server";
	if (st & GNUTLS_CERT_UNEXPECTED_OWNER)
		return "certificate name mismatch";
	if (st & GNUTLS_CERT_SIGNATURE_FAILURE)
		return "certificate signature invalid";
	return "certificate invalid";
}

static void
tls_verify_why(gnutls_session_t s, unsigned st, char *why, size_t whylen)
{
	const char *reason = tls_status_reason(s, st);
	gnutls_datum_t txt = { NULL, 0 };
	size_t len;

	if (gnutls_certificate_verification_status_print(st,
	    GNUTLS_CRT_X509, &txt, 0) < 0 || txt.data == NULL) {
		snprintf(why, whylen, "%s", reason);
		return;
	}

	/* GnuTLS ends each sentence with a space. */
	len = strlen((char *)txt.data);
	while (len > 0 && txt.data[len - 1] == ' ')
		txt.data[--len] = '\0';
	snprintf(why, whylen, "%s (%s)", reason, (char *)txt.data);
	gnutls_free(txt.data);
}

static void
tls_handshake_why(gnutls_session_t s, int r, char *why, size_t whylen)
{
	const char *name;

	if (r == GNUTLS_E_CERTIFICATE_ERROR && tls_verify_status != 0) {
		tls_verify_why(s, tls_verify_status, why, whylen);
		return;
	}
	if (r == GNUTLS_E_CERTIFICATE_ERROR && tls_san_missing) {
		snprintf(why, whylen, "certificate has no subject alternative "
		    "name");
		return;
	}
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		name = gnutls_alert_get_name(gnutls_alert_get(s));
		snprintf(why, whylen, "TLS handshake: fatal alert received: "
		    "%s", name != NULL ? name : "unknown");
		return;
	}
	snprintf(why, whylen, "TLS handshake: %s", gnutls_strerror(r));
}

/*
 * Tell the peer why we give up (a backend administrator then sees "bad
 * certificate" rather than a reset).  Not after the transport failed or
 * the peer gave up first: there is nobody left to tell, and a write to
 * a closed pipe would raise SIGPIPE.  One attempt, result ignored: the
 * handshake has failed either way.
 */
static void
tls_alert_send(gnutls_session_t s, int r)
{
	switch (r) {
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		return;
	}
	(void)gnutls_alert_send_appropriate(s, r);
}

/* Wait until the descriptor GnuTLS is blocked on is ready. */
static int
tls_wait(gnutls_session_t s, int64_t deadline, char *why, size_t whylen)
{
	const struct tls_transport *t = tls_transport(s);
	struct pollfd pfd;
	int left, n;

	if (gnutls_record_get_direction(s) == 1) {
		pfd.fd = t->wfd;
		pfd.events = POLLOUT;
	} else {
		pfd.fd = t->rfd;
		pfd.events = POLLIN;
	}

	for (;;) {
		if (tls_peer_ended(s)) {
			snprintf(why, whylen, "TLS handshake: connection "
			    "closed");
			return -1;
		}
		left = clock_left(deadline);
		if (left == 0)
			break;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		if (n > 0)
			return 0;
		if (n == 0)
			break;
		if (errno != EINTR || io_stop) {
			snprintf(why, whylen, "TLS handshake: %s", io_stop ?
			    "terminated" : strerror(errno));
			return -1;
		}
	}
	snprintf(why, whylen, "TLS handshake timed out");
	return -1;
}

int
tls_handshake(gnutls_session_t s, int64_t deadline, char *why,
    size_t whylen)
{
	const char *name;
	int r;

	for (;;) {
		r = gnutls_handshake(s);
		if (r == GNUTLS_E_SUCCESS)
			return 0;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			if (gnutls_record_get_direction(s) == 0 &&
			    tls_buffered(s))
				continue;
			if (tls_wait(s, deadline, why, whylen) == -1)
				return -1;
			continue;
		}
		if (gnutls_error_is_fatal(r)) {
			tls_handshake_why(s, r, why, whylen);
			tls_alert_send(s, r);
			return -1;
		}

		/* A warning alert (TLS 1.2 only) does not end the
		 * handshake; the deadline still bounds a stream of them. */
		if (clock_left(deadline) == 0) {
			name = gnutls_alert_get_name(gnutls_alert_get(s));
			snprintf(why, whylen, "TLS handshake timed out after "
			    "warning alert %s", name != NULL ? name : "?");
			return -1;
		}
	}
}

void
tls_describe(gnutls_session_t s, char *buf, size_t len)
{
	const char *proto, *cipher;

	if (len == 0)
		return;
	proto = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
	cipher = gnutls_cipher_get_name(gnutls_cipher_get(s));
	snprintf(buf, len, "%s/%s%s", proto != NULL ? proto : "unknown",
	    cipher != NULL ? cipher : "unknown",
	    gnutls_session_is_resumed(s) ? "/resumed" : "");
}

void
tls_close(gnutls_session_t s)
{
	if (s == NULL)
		return;

	/* One attempt only: the session is over either way, and waiting
	 * for a slow or gone peer would hold the process.  The result is
	 * deliberately ignored, as nothing could be done about it. */
	(void)gnutls_bye(s, GNUTLS_SHUT_WR);
	tls_free(s);
}
