/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests for lib/cfg.c, printed as TAP.  Exits non-zero if any test
 * fails.  Config files are written into a private directory under
 * $TMPDIR (or /tmp) that is removed at the end.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

#define T_ERRLEN 1024

static unsigned t_count;
static unsigned t_failed;
static char t_dir[512];
static char t_path[600];	/* t_dir/mailgate.conf */

static int t_ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
t_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	t_count++;
	if (!cond)
		t_failed++;
	printf("%sok %u - ", cond ? "" : "not ", t_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return cond;
}

static int
t_is(const char *got, const char *want, const char *desc)
{
	int same = got != NULL && want != NULL ? strcmp(got, want) == 0 :
	    got == want;

	if (!t_ok(same, "%s", desc)) {
		printf("#   got:  %s\n", got != NULL ? got : "(null)");
		printf("#   want: %s\n", want != NULL ? want : "(null)");
	}
	return same;
}

static int
t_is_uint(unsigned got, unsigned want, const char *desc)
{
	if (!t_ok(got == want, "%s", desc)) {
		printf("#   got:  %u\n#   want: %u\n", got, want);
		return 0;
	}
	return 1;
}

static void
t_write(const char *text, size_t len)
{
	FILE *f = fopen(t_path, "w");

	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(t_path);
		exit(2);
	}
}

/* Write text as the config file and load it into a fresh c. */
static int
t_load(struct cfg *c, const char *text, char *err)
{
	cfg_init(c);
	t_write(text, strlen(text));
	err[0] = '\0';
	return cfg_load(c, t_path, 1, err, T_ERRLEN);
}

/* The file must be refused with "<path>:<want>". */
static void
t_load_fails(const char *text, const char *want, const char *desc)
{
	char err[T_ERRLEN], full[T_ERRLEN];
	struct cfg c;
	int rc = t_load(&c, text, err);

	snprintf(full, sizeof(full), "%s:%s", t_path, want);
	if (rc != -1)
		snprintf(err, sizeof(err), "(cfg_load returned %d)", rc);
	t_is(err, full, desc);
	cfg_free(&c);
}

/* The command-line setting must be refused with "command line: <want>". */
static void
t_set_fails(const char *keyval, const char *want, const char *desc)
{
	char err[T_ERRLEN] = "", full[T_ERRLEN];
	struct cfg c;
	int rc;

	cfg_init(&c);
	rc = cfg_set(&c, keyval, err, sizeof(err));
	snprintf(full, sizeof(full), "command line: %s", want);
	if (rc != -1)
		snprintf(err, sizeof(err), "(cfg_set returned %d)", rc);
	t_is(err, full, desc);
	cfg_free(&c);
}

/* Load text and run cfg_finish; fill err either way. */
static int
t_finish(struct cfg *c, const char *text, enum cfg_proto proto, char *err)
{
	if (t_load(c, text, err) == -1)
		return -2;
	return cfg_finish(c, proto, err, T_ERRLEN);
}

static void
test_defaults(void)
{
	struct cfg c;

	cfg_init(&c);
	t_ok(c.path == NULL && c.cert_file == NULL && c.key_file == NULL &&
	    c.ca_file == NULL && c.ticket_key == NULL &&
	    c.hostname == NULL && c.smtp.host == NULL &&
	    c.imap.host == NULL, "defaults: no strings set");
	t_ok(c.log == CFG_LOG_AUTO && c.connect_timeout == 10 &&
	    c.handshake_timeout == 30 && c.max_errors == 10,
	    "defaults: log auto, timeouts 10 and 30, max_errors 10");
	t_ok(!c.allow_plaintext_backend && !c.allow_plaintext_clients,
	    "defaults: no plaintext allowed");
	t_ok(c.smtp.security == CFG_SEC_STARTTLS && c.smtp.port == 0 &&
	    c.smtp.idle_timeout == 600 && c.smtp.login_timeout == 300,
	    "defaults: smtp starttls, idle 600, login 300");
	t_ok(c.imap.security == CFG_SEC_STARTTLS && c.imap.port == 0 &&
	    c.imap.idle_timeout == 1860 && c.imap.login_timeout == 180,
	    "defaults: imap starttls, idle 1860, login 180");
	cfg_free(&c);
}

static const char t_full[] =
    "# comment line\n"
    "   # indented comment\n"
    "\n"
    "cert = /etc/mailgate/chain.pem\n"
    "key=/etc/mailgate/key.pem\n"
    "ca = /etc/ssl/backend-ca.pem   \n"
    "tls_priority = \" NORMAL:-VERS-ALL:+VERS-TLS1.3 \"\n"
    "backend_tls_priority = NORMAL#x\n"
    "ticket_key = tickets\n"
    "hostname = mx.example.org # trailing comment\n"
    "allow_plaintext_backend = on\n"
    "allow_plaintext_clients = False\n"
    "log = stderr\n"
    "connect_timeout = 1\n"
    "handshake_timeout = 86400\n"
    "max_errors = 1000\n"
    "\t\n"
    "[smtp]\r\n"
    "host = mail.example.org\r\n"
    "port = 65535\n"
    "security = tls\n"
    "idle_timeout = 700\n"
    "login_timeout = 200\n"
    "[imap]\n"
    "host = ::1\n"
    "port = 1\n"
    "security = none\n"
    "idle_timeout = 2000\n"
    "login_timeout = 100\n"
    "[global]\n"
    "  \n";

static void
test_full_file(void)
{
	char err[T_ERRLEN];
	struct cfg c;
	int rc = t_load(&c, t_full, err);

	if (!t_ok(rc == 0, "full file loads"))
		printf("#   error: %s\n", err);
	t_is(c.path, t_path, "path recorded");
	t_is(c.cert_file, "/etc/mailgate/chain.pem", "cert");
	t_is(c.key_file, "/etc/mailgate/key.pem", "key without spaces");
	t_is(c.ca_file, "/etc/ssl/backend-ca.pem", "ca, trailing blanks cut");
	t_is(c.backend_tls_priority, "NORMAL#x", "'#' inside a value kept");
	t_is(c.ticket_key, "tickets", "ticket_key kept as given until finish");
	t_is(c.hostname, "mx.example.org", "a comment after a value");
	t_is(c.tls_priority, " NORMAL:-VERS-ALL:+VERS-TLS1.3 ",
	    "quotes stripped, inner blanks kept");
	t_ok(c.allow_plaintext_backend == 1, "bool on");
	t_ok(c.allow_plaintext_clients == 0, "bool False, any case");
	t_ok(c.log == CFG_LOG_STDERR, "log stderr");
	t_is_uint(c.connect_timeout, 1, "connect_timeout lower bound");
	t_is_uint(c.handshake_timeout, 86400, "handshake_timeout bound");
	t_is_uint(c.max_errors, 1000, "max_errors upper bound");
	t_is(c.smtp.host, "mail.example.org", "smtp.host, CRLF line");
	t_is_uint(c.smtp.port, 65535, "smtp.port upper bound");
	t_ok(c.smtp.security == CFG_SEC_TLS, "smtp.security tls");
	t_is_uint(c.smtp.idle_timeout, 700, "smtp.idle_timeout");
	t_is_uint(c.smtp.login_timeout, 200, "smtp.login_timeout");
	t_is(c.imap.host, "::1", "imap.host");
	t_is_uint(c.imap.port, 1, "imap.port lower bound");
	t_ok(c.imap.security == CFG_SEC_NONE, "imap.security none");
	t_is_uint(c.imap.idle_timeout, 2000, "imap.idle_timeout");
	t_is_uint(c.imap.login_timeout, 100, "imap.login_timeout");
	cfg_free(&c);
}

static void
test_file_errors(void)
{
	t_load_fails("cert = a\n\n[smtp]\nsecurity = startls\n",
	    "4: smtp.security: unknown value \"startls\" "
	    "(expected starttls, tls or none)", "bad security value");
	t_load_fails("[pop3]\n",
	    "1: unknown section [pop3] (expected [global], [smtp] or [imap])",
	    "unknown section");
	t_load_fails("[smtp\n", "1: malformed section header [smtp "
	    "(expected [global], [smtp] or [imap])", "unclosed section");
	t_load_fails("[imap]\nhots = x\n", "2: imap.hots: unknown setting",
	    "unknown key in a section");
	t_load_fails("cetr = x\n", "1: cetr: unknown setting",
	    "unknown global key");
	t_load_fails("host = x\n", "1: host: unknown setting (it belongs in "
	    "an [smtp] or [imap] section)", "backend key outside a section");
	t_load_fails("[smtp]\ncert = x\n", "2: smtp.cert: unknown setting "
	    "(cert is a global setting)", "global key inside a section");
	t_load_fails("smtp.host = x\n", "1: smtp.host: unknown setting "
	    "(dotted names are for the command line; use an [smtp] or "
	    "[imap] section)", "dotted key in a file");
	t_load_fails("[smtp]\nhost mail.example.org\n", "2: smtp.host: "
	    "missing \"=\" (expected smtp.host = value)", "missing '='");
	t_load_fails("= x\n", "1: missing setting name before \"=\"",
	    "missing key");
	t_load_fails("cert =\n", "1: cert: empty value", "empty value");
	t_load_fails("cert = \"\"\n", "1: cert: empty value",
	    "empty quoted value");
	t_load_fails("cert = \"abc\n", "1: cert: missing closing quote "
	    "in \"abc", "unterminated quote");
	t_load_fails("cert = \"\n", "1: cert: missing closing quote in \"",
	    "lone quote");
	t_load_fails("[imap]\nhost = a\n\n[smtp]\n[imap]\nhost = b\n",
	    "6: imap.host: set twice (first on line 2)", "duplicate key");
	t_load_fails("allow_plaintext_backend = maybe\n",
	    "1: allow_plaintext_backend: unknown value \"maybe\" (expected "
	    "yes, no, true, false, on, off, 1 or 0)", "bad boolean");
	t_load_fails("log = console\n", "1: log: unknown value \"console\" "
	    "(expected auto, journal, syslog or stderr)", "bad log target");
	t_load_fails("connect_timeout = 10s\n", "1: connect_timeout: \"10s\" "
	    "is not a number (expected seconds, 1..86400)", "unit suffix");
	t_load_fails("connect_timeout = -1\n", "1: connect_timeout: \"-1\" "
	    "is not a number (expected seconds, 1..86400)", "negative");
	t_load_fails("handshake_timeout = 0\n", "1: handshake_timeout: \"0\" "
	    "is out of range (expected seconds, 1..86400)", "zero timeout");
	t_load_fails("[smtp]\nidle_timeout = 86401\n", "2: smtp.idle_timeout: "
	    "\"86401\" is out of range (expected seconds, 1..86400)",
	    "timeout too long");
	t_load_fails("max_errors = 1001\n", "1: max_errors: \"1001\" is out "
	    "of range (expected 1..1000)", "max_errors too big");
	t_load_fails("[imap]\nport = 0\n", "2: imap.port: \"0\" is out of "
	    "range (expected 1..65535)", "port 0");
	t_load_fails("[smtp]\nport = 99999999999999999999999\n",
	    "2: smtp.port: \"99999999999999999999999\" is out of range "
	    "(expected 1..65535)", "huge port does not wrap");
}

static void
test_long_lines(void)
{
	char err[T_ERRLEN], full[T_ERRLEN];
	char *text = malloc(5000);
	struct cfg c;
	int rc;

	if (text == NULL)
		exit(2);

	/* Exactly 4096 bytes before the newline is still accepted. */
	memset(text, 'a', 5000);
	memcpy(text, "cert = ", 7);
	memcpy(text + 4096, "\n", 2);
	rc = t_load(&c, text, err);
	t_ok(rc == 0 && c.cert_file != NULL &&
	    strlen(c.cert_file) == 4096 - 7, "4096-byte line accepted");
	cfg_free(&c);

	memset(text, 'a', 5000);
	memcpy(text, "# x\ncert = ", 11);
	memcpy(text + 4 + 4097, "\n", 2);
	rc = t_load(&c, text, err);
	snprintf(full, sizeof(full), "%s:2: line longer than 4096 bytes",
	    t_path);
	t_is(rc == -1 ? err : "(accepted)", full, "4097-byte line refused");
	cfg_free(&c);
	free(text);
}

static void
test_file_access(void)
{
	char err[T_ERRLEN] = "", full[T_ERRLEN];
	char missing[700];
	struct cfg c;
	int rc;

	snprintf(missing, sizeof(missing), "%s/absent.conf", t_dir);
	cfg_init(&c);
	c.max_errors = 7;
	rc = cfg_load(&c, missing, 0, err, sizeof(err));
	t_ok(rc == 0 && c.path == NULL && c.max_errors == 7,
	    "optional missing file: 0 and nothing changed");

	rc = cfg_load(&c, missing, 1, err, sizeof(err));
	snprintf(full, sizeof(full), "%s: cannot open: No such file or "
	    "directory", missing);
	t_is(rc == -1 ? err : "(accepted)", full, "required missing file");

	/* A directory opens but cannot be read: stands in for any read
	 * error, and works even when the tests run as root. */
	rc = cfg_load(&c, t_dir, 0, err, sizeof(err));
	snprintf(full, sizeof(full), "%s: cannot read: Is a directory",
	    t_dir);
	t_is(rc == -1 ? err : "(accepted)", full, "unreadable file");

	t_write("cert = a\0b\n", 11);
	rc = cfg_load(&c, t_path, 1, err, sizeof(err));
	snprintf(full, sizeof(full), "%s:1: NUL byte in line", t_path);
	t_is(rc == -1 ? err : "(accepted)", full, "NUL byte refused");
	cfg_free(&c);

	/* A message longer than the buffer is cut, never overrun. */
	cfg_init(&c);
	memset(err, 'x', sizeof(err));
	rc = cfg_set(&c, "nonsense=1", err, 10);
	t_ok(rc == -1 && strcmp(err, "command l") == 0 && err[10] == 'x',
	    "short error buffer is cut and terminated");
	cfg_free(&c);
}

static void
test_set(void)
{
	char err[T_ERRLEN] = "";
	struct cfg c;

	t_ok(t_load(&c, "ca = /x/ca.pem\n[smtp]\nhost = a\nport = 25\n",
	    err) == 0, "file for overrides loads");
	t_ok(cfg_set(&c, "smtp.host=127.0.0.1", err, sizeof(err)) == 0,
	    "set smtp.host");
	t_is(c.smtp.host, "127.0.0.1", "command line replaces file value");
	t_ok(cfg_set(&c, " smtp.port = 2525 ", err, sizeof(err)) == 0 &&
	    c.smtp.port == 2525, "blanks around '=' tolerated");
	t_ok(cfg_set(&c, "smtp.port=2526", err, sizeof(err)) == 0 &&
	    c.smtp.port == 2526, "second command-line value wins");
	t_ok(cfg_set(&c, "ca=system", err, sizeof(err)) == 0 &&
	    c.ca_file == NULL, "ca=system means the system store");
	t_ok(cfg_set(&c, "imap.security=TLS", err, sizeof(err)) == 0 &&
	    c.imap.security == CFG_SEC_TLS, "imap.security on command line");
	t_ok(cfg_set(&c, "log=journal", err, sizeof(err)) == 0 &&
	    c.log == CFG_LOG_JOURNAL, "log on command line");
	t_ok(cfg_set(&c, "tls_priority=a=b", err, sizeof(err)) == 0 &&
	    strcmp(c.tls_priority, "a=b") == 0, "value may contain '='");
	t_set_fails("smtp.host=mx # x", "smtp.host: \"mx # x\" is not a "
	    "host name or IP address", "host with blanks refused");
	cfg_free(&c);

	t_set_fails("smtp.port=70000", "smtp.port: \"70000\" is out of range "
	    "(expected 1..65535)", "set: bad port");
	t_set_fails("smtp.host", "smtp.host: missing \"=\" (expected "
	    "smtp.host = value)", "set: missing '='");
	t_set_fails("smtp.host=", "smtp.host: empty value", "set: empty");
	t_set_fails("", "expected key=value", "set: empty argument");
	t_set_fails("host=x", "host: unknown setting (did you mean smtp.host "
	    "or imap.host?)", "set: undotted backend key");
	t_set_fails("imap.key=x", "imap.key: unknown setting (key is a "
	    "global setting)", "set: global key under a section");
	t_set_fails("pop3.host=x", "pop3.host: unknown setting",
	    "set: unknown section");
	t_set_fails("smtp.security=startls", "smtp.security: unknown value "
	    "\"startls\" (expected starttls, tls or none)",
	    "set: bad security");
}

static const char t_base[] = "cert = /c.pem\nkey = /k.pem\n";

static void
test_finish_ports(void)
{
	static const struct {
		const char *sect, *security;
		unsigned port;
	} t[] = {
		{ "smtp", "starttls", 587 }, { "smtp", "tls", 465 },
		{ "smtp", "none", 25 }, { "imap", "starttls", 143 },
		{ "imap", "tls", 993 }, { "imap", "none", 143 }
	};
	char text[512], err[T_ERRLEN];
	struct cfg c;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum cfg_proto p = t[i].sect[0] == 'i' ? CFG_PROTO_IMAP :
		    CFG_PROTO_SMTP;

		snprintf(text, sizeof(text), "%sallow_plaintext_backend = yes"
		    "\n[%s]\nhost = h\nsecurity = %s\n", t_base, t[i].sect,
		    t[i].security);
		rc = t_finish(&c, text, p, err);
		if (rc != 0)
			printf("#   error: %s\n", err);
		t_ok(rc == 0 && cfg_backend(&c, p)->port == t[i].port,
		    "%s security %s: default port %u", t[i].sect,
		    t[i].security, t[i].port);
		cfg_free(&c);
	}

	rc = t_finish(&c, "cert=/c\nkey=/k\n[imap]\nhost=h\nport=10143\n",
	    CFG_PROTO_IMAP, err);
	t_ok(rc == 0 && c.imap.port == 10143, "explicit port kept");
	t_ok(c.smtp.port == 587 && c.smtp.host == NULL,
	    "other section not required, its port defaulted");
	cfg_free(&c);
}

static void
test_finish_errors(void)
{
	char err[T_ERRLEN], full[T_ERRLEN];
	struct cfg c;
	int rc;

	rc = t_finish(&c, t_base, CFG_PROTO_SMTP, err);
	snprintf(full, sizeof(full), "%s: smtp.host: not set", t_path);
	t_is(rc == -1 ? err : "(accepted)", full, "finish: host not set");
	cfg_free(&c);

	rc = t_finish(&c, "[imap]\nhost = h\nsecurity = none\n",
	    CFG_PROTO_IMAP, err);
	snprintf(full, sizeof(full), "%s:3: imap.security: none sends "
	    "passwords and mail to the backend in plaintext; it is for "
	    "tests only and needs allow_plaintext_backend = yes", t_path);
	t_is(rc == -1 ? err : "(accepted)", full,
	    "finish: security none needs allow_plaintext_backend");
	cfg_free(&c);

	rc = t_finish(&c, "key = /k\n[smtp]\nhost = h\n", CFG_PROTO_SMTP,
	    err);
	snprintf(full, sizeof(full), "%s: cert: not set", t_path);
	t_is(rc == -1 ? err : "(accepted)", full, "finish: cert not set");
	cfg_free(&c);

	rc = t_finish(&c, "cert = /c\n[smtp]\nhost = h\n", CFG_PROTO_SMTP,
	    err);
	snprintf(full, sizeof(full), "%s: key: not set", t_path);
	t_is(rc == -1 ? err : "(accepted)", full, "finish: key not set");
	cfg_free(&c);

	/* Without a file, "configuration" and "command line" stand in. */
	cfg_init(&c);
	rc = cfg_finish(&c, CFG_PROTO_IMAP, err, sizeof(err));
	t_is(rc == -1 ? err : "(accepted)", "configuration: imap.host: "
	    "not set", "finish without a file: host not set");
	cfg_set(&c, "imap.host=h", err, sizeof(err));
	cfg_set(&c, "cert=/c", err, sizeof(err));
	cfg_set(&c, "key=gateway.key", err, sizeof(err));
	unsetenv("CREDENTIALS_DIRECTORY");
	rc = cfg_finish(&c, CFG_PROTO_IMAP, err, sizeof(err));
	t_is(rc == -1 ? err : "(accepted)", "command line: key: "
	    "\"gateway.key\" is a credential name but CREDENTIALS_DIRECTORY "
	    "is not set", "finish: credential without CREDENTIALS_DIRECTORY");
	cfg_free(&c);

	rc = t_finish(&c, "cert=/c\nkey=..\n[smtp]\nhost=h\n",
	    CFG_PROTO_SMTP, err);
	snprintf(full, sizeof(full), "%s:2: key: \"..\" is not a credential "
	    "name", t_path);
	t_is(rc == -1 ? err : "(accepted)", full, "finish: key \"..\"");
	cfg_free(&c);
}

static void
test_finish_credentials(void)
{
	char err[T_ERRLEN], host[256];
	struct cfg c;
	int rc;

	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x", 1);
	rc = t_finish(&c, "cert = c.pem\nkey = gw.key\nticket_key = tk\n"
	    "[smtp]\nhost = h\n", CFG_PROTO_SMTP, err);
	if (!t_ok(rc == 0, "finish with credentials"))
		printf("#   error: %s\n", err);
	t_is(c.key_file, "/run/credentials/x/gw.key", "key credential");
	t_is(c.ticket_key, "/run/credentials/x/tk", "ticket_key credential");
	t_is(c.cert_file, "c.pem", "cert is never a credential");

	memset(host, 0, sizeof(host));
	gethostname(host, sizeof(host) - 1);
	t_is(c.hostname, host, "hostname filled from gethostname()");
	cfg_free(&c);

	rc = t_finish(&c, "cert=/c\nkey=./k.pem\nhostname=mx.test\n"
	    "ticket_key=/t\n[smtp]\nhost=h\n", CFG_PROTO_SMTP, err);
	t_ok(rc == 0, "finish with paths");
	t_is(c.key_file, "./k.pem", "key with '/' is a path as is");
	t_is(c.ticket_key, "/t", "ticket_key path as is");
	t_is(c.hostname, "mx.test", "configured hostname kept");
	cfg_free(&c);

	rc = t_finish(&c, t_base, CFG_PROTO_SMTP, err);
	t_ok(rc == -1 && c.ticket_key == NULL, "ticket_key stays unset");
	cfg_free(&c);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void
test_misc(void)
{
	char err[T_ERRLEN];
	struct cfg c;

	t_is(cfg_security_name(CFG_SEC_STARTTLS), "starttls", "name starttls");
	t_is(cfg_security_name(CFG_SEC_TLS), "tls", "name tls");
	t_is(cfg_security_name(CFG_SEC_NONE), "none", "name none");

	cfg_init(&c);
	t_ok(cfg_backend(&c, CFG_PROTO_SMTP) == &c.smtp &&
	    cfg_backend(&c, CFG_PROTO_IMAP) == &c.imap, "cfg_backend");

	t_load(&c, t_full, err);
	cfg_free(&c);
	t_ok(c.path == NULL && c.cert_file == NULL && c.key_file == NULL &&
	    c.tls_priority == NULL && c.backend_tls_priority == NULL &&
	    c.ticket_key == NULL && c.hostname == NULL && c.ca_file == NULL &&
	    c.smtp.host == NULL && c.imap.host == NULL,
	    "cfg_free clears every string");
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t_dir, sizeof(t_dir), "%s/cfg-unit.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror(t_dir);
		return 2;
	}
	snprintf(t_path, sizeof(t_path), "%s/mailgate.conf", t_dir);

	test_defaults();
	test_full_file();
	test_file_errors();
	test_long_lines();
	test_file_access();
	test_set();
	test_finish_ports();
	test_finish_errors();
	test_finish_credentials();
	test_misc();

	unlink(t_path);
	rmdir(t_dir);
	printf("1..%u\n", t_count);
	return t_failed == 0 ? 0 : 1;
}
