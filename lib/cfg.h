/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_CFG_H
#define MAILGATE_CFG_H

#include <stddef.h>

/*
 * Configuration: one file of "key = value" lines with optional [smtp]
 * and [imap] sections, plus single settings from the command line
 * ("-o smtp.host=127.0.0.1").  Inside a section a key "host" is stored
 * as "smtp.host"; on the command line the dotted form is used.
 *
 * Every function that can fail returns 0 or -1; on -1 it has written a
 * one-line reason into err (at most errlen bytes, NUL-terminated) that
 * names the file, the line and the setting at fault, for example
 *   "/etc/mailgate/mailgate.conf:12: smtp.security: unknown value
 *    \"startls\" (expected starttls, tls or none)".
 * The caller logs it and exits with EXIT_CONFIG.
 *
 * Strings in struct cfg are owned by the struct (malloc'd); cfg_free()
 * releases them.
 */

enum cfg_security {
	CFG_SEC_STARTTLS = 0,	/* plaintext connect, then STARTTLS */
	CFG_SEC_TLS,		/* TLS from the first byte */
	CFG_SEC_NONE		/* plaintext; needs allow_plaintext_backend */
};

enum cfg_proto {
	CFG_PROTO_SMTP = 0,
	CFG_PROTO_IMAP
};

enum cfg_log {
	CFG_LOG_AUTO = 0,	/* journal if its socket exists, else syslog */
	CFG_LOG_JOURNAL,
	CFG_LOG_SYSLOG,
	CFG_LOG_STDERR
};

struct cfg_backend {
	char *host;			/* DNS name or IP literal */
	unsigned port;			/* 0 until cfg_finish() */
	enum cfg_security security;
	unsigned idle_timeout;		/* seconds, after login */
	unsigned login_timeout;		/* seconds idle before login */
};

/* Room for where each setting came from, for error messages. */
#define CFG_ORIGINS	32
#define CFG_ORIGIN_CLI	((unsigned)-1)

struct cfg {
	char *path;			/* file read, NULL if none */
	char *cert_file;		/* gateway's chain, PEM, leaf first */
	char *key_file;			/* resolved path of the private key */
	char *ca_file;			/* NULL: system trust store */
	char *tls_priority;		/* client leg; NULL: built-in */
	char *backend_tls_priority;	/* backend leg; NULL: built-in */
	char *ticket_key;		/* resolved path, NULL: no tickets */
	char *backend_session_cache;	/* directory, NULL: off */
	char *hostname;			/* name in our greetings */
	int allow_plaintext_backend;
	int allow_plaintext_clients;
	enum cfg_log log;
	unsigned connect_timeout;	/* seconds */
	unsigned handshake_timeout;	/* seconds from accept to client TLS */
	unsigned max_errors;		/* pre-login protocol errors */
	struct cfg_backend smtp;
	struct cfg_backend imap;
	/* Per setting: the line of c->path that set it, CFG_ORIGIN_CLI
	 * for the command line, 0 for the default. */
	unsigned origin[CFG_ORIGINS];
};

/* Fill c with built-in defaults (nothing allocated that needs freeing
 * except through cfg_free). */
void cfg_init(struct cfg *c);

/* Read a configuration file.  If required is 0 and the file does not
 * exist, return 0 and leave c unchanged. */
int cfg_load(struct cfg *c, const char *path, int required,
    char *err, size_t errlen);

/* Apply one "key=value" from the command line; origin names it in
 * errors ("command line"). */
int cfg_set(struct cfg *c, const char *keyval, char *err, size_t errlen);

/* Check the settings a program for proto needs, apply the defaults that
 * depend on others (ports follow security), and resolve key and
 * ticket_key names against $CREDENTIALS_DIRECTORY. */
int cfg_finish(struct cfg *c, enum cfg_proto proto, char *err,
    size_t errlen);

/* The backend section for proto. */
const struct cfg_backend *cfg_backend(const struct cfg *c,
    enum cfg_proto proto);

const char *cfg_security_name(enum cfg_security s);

void cfg_free(struct cfg *c);

#endif
