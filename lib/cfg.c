/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg.h"

#ifdef __GNUC__
#define CFG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CFG_PRINTF(f, a)
#endif

/* Longest line accepted, without its newline.  A fixed bound keeps a
 * corrupt or binary file from making us allocate without limit. */
#define CFG_LINE_MAX 4096

/* Longest dotted setting name we bother to spell out in a message. */
#define CFG_NAME_MAX 128

enum cfg_kind {
	CFG_K_STR,		/* any text, copied */
	CFG_K_HOST,		/* DNS name or IP literal, copied */
	CFG_K_CA,		/* "system" (NULL) or a path */
	CFG_K_BOOL,
	CFG_K_LOG,
	CFG_K_SEC,
	CFG_K_UINT		/* decimal, min..max */
};

struct cfg_key {
	const char *name;	/* full dotted name */
	enum cfg_kind kind;
	size_t off;		/* where the value lives in struct cfg */
	unsigned min, max;	/* CFG_K_UINT only */
	const char *unit;	/* CFG_K_UINT only: "seconds, " or "" */
};

#define CFG_KEY(n, k, f) \
	{ n, k, offsetof(struct cfg, f), 0, 0, "" }
#define CFG_NUM(n, f, lo, hi, u) \
	{ n, CFG_K_UINT, offsetof(struct cfg, f), lo, hi, u }
#define CFG_SECONDS(n, f) CFG_NUM(n, f, 1, 86400, "seconds, ")
#define CFG_BACKEND_KEYS(p, m) \
	CFG_KEY(p ".host", CFG_K_HOST, m.host), \
	CFG_NUM(p ".port", m.port, 1, 65535, ""), \
	CFG_KEY(p ".security", CFG_K_SEC, m.security), \
	CFG_SECONDS(p ".idle_timeout", m.idle_timeout), \
	CFG_SECONDS(p ".login_timeout", m.login_timeout)

static const struct cfg_key cfg_keys[] = {
	CFG_KEY("cert", CFG_K_STR, cert_file),
	CFG_KEY("key", CFG_K_STR, key_file),
	CFG_KEY("ca", CFG_K_CA, ca_file),
	CFG_KEY("tls_priority", CFG_K_STR, tls_priority),
	CFG_KEY("backend_tls_priority", CFG_K_STR, backend_tls_priority),
	CFG_KEY("ticket_key", CFG_K_STR, ticket_key),
	CFG_KEY("backend_session_cache", CFG_K_STR, backend_session_cache),
	CFG_KEY("hostname", CFG_K_HOST, hostname),
	CFG_KEY("allow_plaintext_backend", CFG_K_BOOL,
	    allow_plaintext_backend),
	CFG_KEY("allow_plaintext_clients", CFG_K_BOOL,
	    allow_plaintext_clients),
	CFG_KEY("log", CFG_K_LOG, log),
	CFG_SECONDS("connect_timeout", connect_timeout),
	CFG_SECONDS("handshake_timeout", handshake_timeout),
	CFG_NUM("max_errors", max_errors, 1, 1000, ""),
	CFG_BACKEND_KEYS("smtp", smtp),
	CFG_BACKEND_KEYS("imap", imap)
};

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

_Static_assert(CFG_NKEYS <= CFG_ORIGINS, "CFG_ORIGINS too small");

struct cfg_word {
	const char *word;
	int value;
};

static const struct cfg_word cfg_bool_words[] = {
	{ "yes", 1 }, { "true", 1 }, { "on", 1 }, { "1", 1 },
	{ "no", 0 }, { "false", 0 }, { "off", 0 }, { "0", 0 },
	{ NULL, 0 }
};

static const struct cfg_word cfg_log_words[] = {
	{ "auto", CFG_LOG_AUTO }, { "journal", CFG_LOG_JOURNAL },
	{ "syslog", CFG_LOG_SYSLOG }, { "stderr", CFG_LOG_STDERR },
	{ NULL, 0 }
};

static const struct cfg_word cfg_sec_words[] = {
	{ "starttls", CFG_SEC_STARTTLS }, { "tls", CFG_SEC_TLS },
	{ "none", CFG_SEC_NONE },
	{ NULL, 0 }
};

/* Where a setting being applied comes from, for error messages. */
struct cfg_ctx {
	const char *where;	/* file path or "command line" */
	unsigned line;		/* 0: no line to name */
	const char *prefix;	/* current section: "", "smtp." or "imap." */
	unsigned *seen;		/* per key, line that set it; file only */
	char *err;
	size_t errlen;
};

static int cfg_fail(const struct cfg_ctx *, const char *, const char *,
    ...) CFG_PRINTF(3, 4);

/* Write "where[:line][: name]: message" into the caller's buffer. */
static int
cfg_fail(const struct cfg_ctx *x, const char *name, const char *fmt, ...)
{
	va_list ap;
	size_t n;
	int r;

	if (x->err == NULL || x->errlen == 0)
		return -1;

	if (x->line > 0)
		r = snprintf(x->err, x->errlen, "%s:%u: ", x->where, x->line);
	else
		r = snprintf(x->err, x->errlen, "%s: ", x->where);
	n = r > 0 ? (size_t)r : 0;
	if (n < x->errlen && name != NULL) {
		r = snprintf(x->err + n, x->errlen - n, "%s: ", name);
		n += r > 0 ? (size_t)r : 0;
	}
	if (n >= x->errlen)
		return -1;

	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

static const struct cfg_key *
cfg_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

/* Strip leading and trailing white space (a CR from a CRLF file too). */
static char *
cfg_trim(char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int
cfg_replace(char **field, const char *val)
{
	char *copy = NULL;

	if (val != NULL && (copy = strdup(val)) == NULL)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

void
cfg_init(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->log = CFG_LOG_AUTO;
	c->connect_timeout = 10;
	c->handshake_timeout = 30;
	c->max_errors = 10;

	c->smtp.security = CFG_SEC_STARTTLS;
	c->smtp.idle_timeout = 600;	/* RFC 5321 4.5.3.2: 10 minutes */
	c->smtp.login_timeout = 300;

	c->imap.security = CFG_SEC_STARTTLS;
	/* RFC 9051 5.4 wants at least 30 minutes; a minute more lets a
	 * client that refreshes IDLE at exactly 30 minutes get through. */
	c->imap.idle_timeout = 1860;
	c->imap.login_timeout = 180;
}

static int
cfg_word(const struct cfg_ctx *x, const char *name, const char *val,
    const struct cfg_word *w, const char *expected, int *out)
{
	for (; w->word != NULL; w++) {
		if (strcasecmp(w->word, val) == 0) {
			*out = w->value;
			return 0;
		}
	}
	return cfg_fail(x, name, "unknown value \"%s\" (expected %s)", val,
	    expected);
}

static int
cfg_uint(const struct cfg_ctx *x, const struct cfg_key *k, const char *val,
    unsigned *out)
{
	unsigned long n = 0;
	const char *p;

	for (p = val; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return cfg_fail(x, k->name, "\"%s\" is not a number "
			    "(expected %s%u..%u)", val, k->unit, k->min,
			    k->max);
		/* Saturate rather than wrap so that huge numbers are
		 * reported as out of range, not as small ones. */
		if (n <= k->max)
			n = n * 10 + (unsigned long)(*p - '0');
	}
	if (n < k->min || n > k->max)
		return cfg_fail(x, k->name, "\"%s\" is out of range (expected "
		    "%s%u..%u)", val, k->unit, k->min, k->max);
	*out = (unsigned)n;
	return 0;
}

/* Convert val to the key's type and store it, replacing what was there. */
static int
cfg_store(struct cfg *c, const struct cfg_ctx *x, const struct cfg_key *k,
    const char *val)
{
	void *field = (char *)c + k->off;
	int v = 0;

	/* A host name ends up in DNS queries, SNI, greetings and log
	 * lines: letters, digits and the punctuation of names and IPv6
	 * literals only. */
	if (k->kind == CFG_K_HOST &&
	    val[strspn(val, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
	    "wxyz0123456789.-:_")] != '\0')
		return cfg_fail(x, k->name, "\"%s\" is not a host name or IP "
		    "address", val);

	switch (k->kind) {
	case CFG_K_CA:
	case CFG_K_HOST:
	case CFG_K_STR:
		/* "system" is spelled out so that a later setting can
		 * undo a CA file given earlier. */
		if (k->kind == CFG_K_CA && strcmp(val, "system") == 0)
			val = NULL;
		if (cfg_replace(field, val) == -1)
			return cfg_fail(x, k->name, "%s", strerror(errno));
		return 0;
	case CFG_K_UINT:
		return cfg_uint(x, k, val, field);
	case CFG_K_BOOL:
		if (cfg_word(x, k->name, val, cfg_bool_words,
		    "yes, no, true, false, on, off, 1 or 0", &v) == -1)
			return -1;
		*(int *)field = v;
		return 0;
	case CFG_K_LOG:
		if (cfg_word(x, k->name, val, cfg_log_words,
		    "auto, journal, syslog or stderr", &v) == -1)
			return -1;
		*(enum cfg_log *)field = (enum cfg_log)v;
		return 0;
	case CFG_K_SEC:
		if (cfg_word(x, k->name, val, cfg_sec_words,
		    "starttls, tls or none", &v) == -1)
			return -1;
		*(enum cfg_security *)field = (enum cfg_security)v;
		return 0;
	}
	return cfg_fail(x, k->name, "internal error: unknown kind");
}

/* Name the likely slip: a global key inside a section, or a backend key
 * without one. */
static int
cfg_unknown(const struct cfg_ctx *x, const char *name)
{
	char alt[CFG_NAME_MAX + sizeof("smtp.")];
	const char *dot = strchr(name, '.');

	if (dot != NULL && cfg_lookup(dot + 1) != NULL)
		return cfg_fail(x, name, "unknown setting (%s is a global "
		    "setting)", dot + 1);

	snprintf(alt, sizeof(alt), "smtp.%s", name);
	if (dot == NULL && cfg_lookup(alt) != NULL && x->seen != NULL)
		return cfg_fail(x, name, "unknown setting (it belongs in an "
		    "[smtp] or [imap] section)");
	if (dot == NULL && cfg_lookup(alt) != NULL)
		return cfg_fail(x, name, "unknown setting (did you mean "
		    "smtp.%s or imap.%s?)", name, name);
	return cfg_fail(x, name, "unknown setting");
}

/* Take off one pair of enclosing double quotes, which lets a value keep
 * leading or trailing blanks. */
static int
cfg_unquote(const struct cfg_ctx *x, const char *name, char **val)
{
	char *v = *val;
	size_t n = strlen(v);

	if (v[0] != '"')
		return 0;
	if (n < 2 || v[n - 1] != '"')
		return cfg_fail(x, name, "missing closing quote in %s", v);
	v[n - 1] = '\0';
	*val = v + 1;
	return 0;
}

/* A line without "=": name its first word as the setting at fault. */
static int
cfg_no_equals(const struct cfg_ctx *x, const char *s)
{
	char name[CFG_NAME_MAX];
	int len = (int)strcspn(s, " \t");

	if (len == 0)
		return cfg_fail(x, NULL, "expected key=value");
	snprintf(name, sizeof(name), "%s%.*s", x->prefix, len, s);
	return cfg_fail(x, name, "missing \"=\" (expected %s = value)", name);
}

/* Apply one trimmed "key = value" from a file or the command line. */
static int
cfg_assign(struct cfg *c, const struct cfg_ctx *x, char *s)
{
	char name[CFG_NAME_MAX];
	const struct cfg_key *k;
	char *eq = strchr(s, '='), *key, *val;

	if (eq == NULL)
		return cfg_no_equals(x, s);
	*eq = '\0';
	key = cfg_trim(s);
	val = cfg_trim(eq + 1);
	if (*key == '\0')
		return cfg_fail(x, NULL, "missing setting name before \"=\"");

	/* No known name is anywhere near this long, so a cut one is
	 * unknown. */
	if (snprintf(name, sizeof(name), "%s%s", x->prefix, key) >=
	    (int)sizeof(name))
		return cfg_fail(x, name, "unknown setting");
	/* In a file the section says which backend; a dotted name there
	 * would allow two spellings of one setting. */
	if (x->seen != NULL && strchr(key, '.') != NULL)
		return cfg_fail(x, name, "unknown setting (dotted names are "
		    "for the command line; use an [smtp] or [imap] section)");
	if ((k = cfg_lookup(name)) == NULL)
		return cfg_unknown(x, name);
	if (x->seen != NULL && x->seen[k - cfg_keys] != 0)
		return cfg_fail(x, name, "set twice (first on line %u)",
		    x->seen[k - cfg_keys]);

	if (cfg_unquote(x, name, &val) == -1)
		return -1;
	if (*val == '\0')
		return cfg_fail(x, name, "empty value");
	if (cfg_store(c, x, k, val) == -1)
		return -1;
	if (x->seen != NULL)
		x->seen[k - cfg_keys] = x->line;
	c->origin[k - cfg_keys] = x->seen != NULL ? x->line : CFG_ORIGIN_CLI;
	return 0;
}

static int
cfg_section(struct cfg_ctx *x, char *s)
{
	size_t n = strlen(s);

	if (n < 2 || s[n - 1] != ']')
		return cfg_fail(x, NULL, "malformed section header %s "
		    "(expected [global], [smtp] or [imap])", s);
	s[n - 1] = '\0';
	if (strcmp(s + 1, "global") == 0)
		x->prefix = "";
	else if (strcmp(s + 1, "smtp") == 0)
		x->prefix = "smtp.";
	else if (strcmp(s + 1, "imap") == 0)
		x->prefix = "imap.";
	else
		return cfg_fail(x, NULL, "unknown section [%s] (expected "
		    "[global], [smtp] or [imap])", s + 1);
	return 0;
}

/* Cut a comment off the end of a line: "#" at the start or after a
 * blank, outside double quotes, so that a value can still hold "#"
 * ("a#b", or anything quoted). */
static void
cfg_strip_comment(char *s)
{
	int quoted = 0;
	char *p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '#' && !quoted &&
		    (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

static int
cfg_parse_line(struct cfg *c, struct cfg_ctx *x, char *line)
{
	char *s;

	cfg_strip_comment(line);
	s = cfg_trim(line);
	if (*s == '\0')
		return 0;
	if (*s == '[')
		return cfg_section(x, s);
	return cfg_assign(c, x, s);
}

enum cfg_read {
	CFG_READ_EOF = 0,
	CFG_READ_LINE,
	CFG_READ_ERROR,		/* errno says why */
	CFG_READ_LONG,
	CFG_READ_NUL
};

static enum cfg_read
cfg_read_line(FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int ch;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		/* A NUL would silently cut the line short later on. */
		if (ch == '\0')
			return CFG_READ_NUL;
		if (n + 1 >= size)
			return CFG_READ_LONG;
		buf[n++] = (char)ch;
	}
	buf[n] = '\0';
	if (ch == EOF && ferror(f))
		return CFG_READ_ERROR;
	if (ch == EOF && n == 0)
		return CFG_READ_EOF;
	return CFG_READ_LINE;
}

static int
cfg_parse_file(struct cfg *c, struct cfg_ctx *x, FILE *f)
{
	char buf[CFG_LINE_MAX + 1];
	enum cfg_read r;

	while ((r = cfg_read_line(f, buf, sizeof(buf))) != CFG_READ_EOF) {
		x->line++;
		switch (r) {
		case CFG_READ_ERROR:
			x->line = 0;
			return cfg_fail(x, NULL, "cannot read: %s",
			    strerror(errno));
		case CFG_READ_LONG:
			return cfg_fail(x, NULL, "line longer than %d bytes",
			    CFG_LINE_MAX);
		case CFG_READ_NUL:
			return cfg_fail(x, NULL, "NUL byte in line");
		default:
			break;
		}
		if (cfg_parse_line(c, x, buf) == -1)
			return -1;
	}
	return 0;
}

int
cfg_load(struct cfg *c, const char *path, int required, char *err,
    size_t errlen)
{
	unsigned seen[CFG_NKEYS] = { 0 };
	struct cfg_ctx x = { path, 0, "", seen, err, errlen };
	FILE *f;
	int rc;

	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && !required)
			return 0;
		return cfg_fail(&x, NULL, "cannot open: %s", strerror(errno));
	}
	if (cfg_replace(&c->path, path) == -1) {
		fclose(f);
		return cfg_fail(&x, NULL, "%s", strerror(errno));
	}

	rc = cfg_parse_file(c, &x, f);
	fclose(f);
	return rc;
}

int
cfg_set(struct cfg *c, const char *keyval, char *err, size_t errlen)
{
	struct cfg_ctx x = { "command line", 0, "", NULL, err, errlen };
	char *s;
	int rc;

	if ((s = strdup(keyval)) == NULL)
		return cfg_fail(&x, NULL, "%s", strerror(errno));
	rc = cfg_assign(c, &x, cfg_trim(s));
	free(s);
	return rc;
}

static void
cfg_default_port(struct cfg_backend *b, unsigned starttls, unsigned tls,
    unsigned none)
{
	if (b->port != 0)
		return;
	if (b->security == CFG_SEC_TLS)
		b->port = tls;
	else if (b->security == CFG_SEC_NONE)
		b->port = none;
	else
		b->port = starttls;
}

/* A key or ticket key named without "/" is a systemd credential, so that
 * units can use LoadCredential= without spelling out the directory. */
static int
cfg_resolve(const struct cfg_ctx *x, const char *name, char **field)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char *path;
	size_t len;

	if (*field == NULL || strchr(*field, '/') != NULL)
		return 0;
	if (strcmp(*field, ".") == 0 || strcmp(*field, "..") == 0)
		return cfg_fail(x, name, "\"%s\" is not a credential name",
		    *field);
	if (dir == NULL || *dir == '\0')
		return cfg_fail(x, name, "\"%s\" is a credential name but "
		    "CREDENTIALS_DIRECTORY is not set", *field);

	len = strlen(dir) + 1 + strlen(*field) + 1;
	if ((path = malloc(len)) == NULL)
		return cfg_fail(x, name, "%s", strerror(errno));
	snprintf(path, len, "%s/%s", dir, *field);
	free(*field);
	*field = path;
	return 0;
}

/* Only the section for this program's protocol has to be complete. */
/* An error context that names where setting name came from: its file
 * and line, or the command line. */
static struct cfg_ctx
cfg_origin_ctx(const struct cfg *c, const char *name, char *err,
    size_t errlen)
{
	const struct cfg_key *k = cfg_lookup(name);
	unsigned o = k != NULL ? c->origin[k - cfg_keys] : 0;
	struct cfg_ctx x = { "command line", 0, "", NULL, err, errlen };

	if (o != CFG_ORIGIN_CLI && c->path != NULL) {
		x.where = c->path;
		x.line = o;
	}
	return x;
}

static int
cfg_check_backend(const struct cfg *c, enum cfg_proto proto,
    const struct cfg_ctx *unset)
{
	struct cfg_ctx x;
	const struct cfg_backend *b = cfg_backend(c, proto);
	const char *sect = proto == CFG_PROTO_IMAP ? "imap" : "smtp";
	char name[CFG_NAME_MAX];

	snprintf(name, sizeof(name), "%s.host", sect);
	if (b->host == NULL)
		return cfg_fail(unset, name, "not set");

	/* Plaintext to the backend must be asked for twice, so that one
	 * mistyped word cannot expose passwords on the network. */
	snprintf(name, sizeof(name), "%s.security", sect);
	x = cfg_origin_ctx(c, name, unset->err, unset->errlen);
	if (b->security == CFG_SEC_NONE && !c->allow_plaintext_backend)
		return cfg_fail(&x, name, "none sends passwords and mail to "
		    "the backend in plaintext; it is for tests only and "
		    "needs allow_plaintext_backend = yes");
	return 0;
}

static int
cfg_fill_hostname(struct cfg *c, const struct cfg_ctx *x)
{
	char buf[256];

	if (c->hostname != NULL)
		return 0;
	if (gethostname(buf, sizeof(buf)) == -1)
		return cfg_fail(x, "hostname", "not set, and gethostname "
		    "failed: %s", strerror(errno));
	/* POSIX leaves termination open when the name was cut. */
	buf[sizeof(buf) - 1] = '\0';
	if (buf[0] == '\0')
		return cfg_fail(x, "hostname", "not set, and the system has "
		    "no host name");
	if (cfg_replace(&c->hostname, buf) == -1)
		return cfg_fail(x, "hostname", "%s", strerror(errno));
	return 0;
}

int
cfg_finish(struct cfg *c, enum cfg_proto proto, char *err, size_t errlen)
{
	/* A value that is wrong came from the file if there was one; a
	 * value that is missing is missing from the whole configuration. */
	struct cfg_ctx unset = { c->path != NULL ? c->path : "configuration",
	    0, "", NULL, err, errlen };
	struct cfg_ctx kx = cfg_origin_ctx(c, "key", err, errlen);
	struct cfg_ctx tx = cfg_origin_ctx(c, "ticket_key", err, errlen);
	struct cfg_ctx x = { c->path != NULL ? c->path : "command line", 0,
	    "", NULL, err, errlen };

	if (cfg_check_backend(c, proto, &unset) == -1)
		return -1;
	cfg_default_port(&c->smtp, 587, 465, 25);
	cfg_default_port(&c->imap, 143, 993, 143);

	if (c->cert_file == NULL)
		return cfg_fail(&unset, "cert", "not set");
	if (c->key_file == NULL)
		return cfg_fail(&unset, "key", "not set");
	if (cfg_resolve(&kx, "key", &c->key_file) == -1 ||
	    cfg_resolve(&tx, "ticket_key", &c->ticket_key) == -1)
		return -1;
	return cfg_fill_hostname(c, &x);
}

const struct cfg_backend *
cfg_backend(const struct cfg *c, enum cfg_proto proto)
{
	return proto == CFG_PROTO_IMAP ? &c->imap : &c->smtp;
}

const char *
cfg_security_name(enum cfg_security s)
{
	switch (s) {
	case CFG_SEC_STARTTLS:
		return "starttls";
	case CFG_SEC_TLS:
		return "tls";
	case CFG_SEC_NONE:
		return "none";
	}
	return "unknown";
}

void
cfg_free(struct cfg *c)
{
	free(c->path);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca_file);
	free(c->tls_priority);
	free(c->backend_tls_priority);
	free(c->ticket_key);
	free(c->backend_session_cache);
	free(c->hostname);
	free(c->smtp.host);
	free(c->imap.host);
	memset(c, 0, sizeof(*c));
}
