/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "clock.h"
#include "exitcode.h"
#include "gateway.h"
#include "imap.h"
#include "log.h"
#include "net.h"
#include "resume.h"
#include "smtp.h"
#include "tls.h"

#define DEFAULT_CONFIG	"/etc/mailgate/mailgate.conf"
#define MAX_SETS	64

static const char *const gateway_names[] = {
	[ROLE_SMTP_STARTTLS] = "mailgate-smtp-starttls",
	[ROLE_SMTPS] = "mailgate-smtps",
	[ROLE_IMAP_STARTTLS] = "mailgate-imap-starttls",
	[ROLE_IMAPS] = "mailgate-imaps",
};

struct gateway_opts {
	const char *config;
	int config_given;
	const char *sets[MAX_SETS];
	int nsets;
	int verbose;
	int use_stderr;
	int check;
};

static void
gateway_usage(FILE *f, const char *prog)
{
	fprintf(f, "usage: %s [-ehtvV] [-c file] [-o key=value]...\n"
	    "  -c, --config FILE   configuration file (default "
	    DEFAULT_CONFIG ")\n"
	    "  -o, --set KEY=VALUE set one setting, e.g. smtp.host=mx1\n"
	    "  -e, --stderr        log to standard error\n"
	    "  -v, --verbose       more detail; twice: protocol trace\n"
	    "  -t, --check         check the configuration and exit\n"
	    "  -h, --help          this text\n"
	    "  -V, --version       version\n", prog);
}

/* Returns -1 to continue, or an exit status. */
static int
gateway_options(int argc, char **argv, const char *prog,
    struct gateway_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 'o' },
		{ "stderr", no_argument, NULL, 'e' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	o->config = DEFAULT_CONFIG;
	while ((ch = getopt_long(argc, argv, "c:o:ehtvV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			o->config_given = 1;
			break;
		case 'o':
			if (o->nsets == MAX_SETS) {
				log_user(LOG_ERR, "too many -o options");
				return EXIT_CONFIG;
			}
			o->sets[o->nsets++] = optarg;
			break;
		case 'e':
			o->use_stderr = 1;
			break;
		case 'v':
			o->verbose++;
			break;
		case 't':
			o->check = 1;
			break;
		case 'h':
			gateway_usage(stdout, prog);
			return EXIT_OK;
		case 'V':
			printf("%s %s\n", prog, MAILGATE_VERSION);
			return EXIT_OK;
		default:
			gateway_usage(stderr, prog);
			return EXIT_CONFIG;
		}
	}
	if (optind < argc) {
		log_user(LOG_ERR, "unexpected argument \"%s\"", argv[optind]);
		return EXIT_CONFIG;
	}
	return -1;
}

static int
gateway_config(struct cfg *c, const struct gateway_opts *o,
    enum cfg_proto proto)
{
	char err[512];
	int i;

	cfg_init(c);
	if (cfg_load(c, o->config, o->config_given, err, sizeof(err)) == -1)
		goto fail;
	for (i = 0; i < o->nsets; i++)
		if (cfg_set(c, o->sets[i], err, sizeof(err)) == -1)
			goto fail;
	if (o->use_stderr)
		c->log = CFG_LOG_STDERR;
	log_set_dest(c->log);
	if (cfg_finish(c, proto, err, sizeof(err)) == -1)
		goto fail;
	if (tls_server_load(c, err, sizeof(err)) == -1)
		goto fail;
	if (cfg_backend(c, proto)->security != CFG_SEC_NONE &&
	    tls_backend_load(c, err, sizeof(err)) == -1)
		goto fail;
	if (resume_setup(c, proto, o->check, err, sizeof(err)) == -1)
		goto fail;
	return 0;
fail:
	log_user(LOG_ERR, "event=config-error %s", err);
	return -1;
}

/*
 * Whether systemd passed the connection on fd 3 (socket activation
 * without StandardInput=socket): LISTEN_PID is ours, as sd_listen_fds(3)
 * describes.  Returns 1 for fd 3, 0 when the variables are absent or
 * meant for another process, -1 when they are ours but do not pass
 * exactly one socket (a unit with more than one Listen line).  The
 * variables are removed so that nothing started later takes them for
 * its own.
 */
#define LISTEN_FDS_START 3

static int
gateway_listen_fd(void)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	unsigned long v = 0;
	int r = 0;

	if (pid != NULL && fds != NULL && pid[0] != '\0' &&
	    strspn(pid, "0123456789") == strlen(pid) && strlen(pid) < 20) {
		v = strtoul(pid, NULL, 10);
		if (v == (unsigned long)getpid())
			r = strcmp(fds, "1") == 0 ? 1 : -1;
	}
	if (r == -1)
		log_user(LOG_ERR, "event=config-error LISTEN_FDS=%.20s: "
		    "expected exactly one socket (one Listen line, "
		    "Accept=yes)", fds);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (r == 1)
		(void)fcntl(LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
	return r;
}

/* Where the client is: fd 3 under socket activation without
 * StandardInput=socket, else stdin and stdout.  -1 if systemd passed
 * something else. */
static int
gateway_client_fds(int *rfd, int *wfd)
{
	int r = gateway_listen_fd();

	if (r == 1) {
		*rfd = *wfd = LISTEN_FDS_START;
		return 0;
	}
	*rfd = STDIN_FILENO;
	*wfd = STDOUT_FILENO;
	return r;
}

/* Tell a client that reached us through a misconfigured gateway that
 * the service is unavailable, where the protocol has plaintext for it. */
static void
gateway_config_refusal(enum session_role role, int wfd)
{
	static const char smtp[] = "421 4.3.0 Service not available "
	    "(configuration error)\r\n";
	static const char imap[] = "* BYE [UNAVAILABLE] Service not "
	    "available (configuration error)\r\n";
	struct stat st;
	ssize_t r;

	if (fstat(wfd, &st) == -1 || !S_ISSOCK(st.st_mode))
		return;
	if (role == ROLE_SMTP_STARTTLS)
		r = write(wfd, smtp, sizeof(smtp) - 1);
	else if (role == ROLE_IMAP_STARTTLS)
		r = write(wfd, imap, sizeof(imap) - 1);
	(void)r;
}

/* A process that held a password must not leave it in a core file or
 * let another process of the same user read its memory. */
static void
gateway_harden(void)
{
	struct rlimit rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void
gateway_on_term(int sig)
{
	(void)sig;
	io_stop = 1;
}

/* SIGTERM (systemctl stop, a shutdown) interrupts whatever wait is in
 * progress, and the session ends through its normal path, with close
 * alerts and a summary line.  No SA_RESTART, so poll() returns. */
static void
gateway_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = gateway_on_term;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* s must be all zero, as a static struct is. */
static void
gateway_session_init(struct session *s, const struct cfg *c,
    enum session_role role, int rfd, int wfd)
{
	unsigned char rnd[4];

	/* s is static, so already zero: a memset would touch the pages of
	 * both leg buffers for nothing. */
	s->start = clock_ms();
	s->role = role;
	s->proto = role <= ROLE_SMTPS ? CFG_PROTO_SMTP : CFG_PROTO_IMAP;
	s->cfg = c;
	s->be = cfg_backend(c, s->proto);
	s->tls_deadline = s->start + (int64_t)c->handshake_timeout * 1000;
	s->verify = "-";
	snprintf(s->client_tls, sizeof(s->client_tls), "none");
	snprintf(s->backend_tls, sizeof(s->backend_tls), "none");
	if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) != 0)
		memset(rnd, 0, sizeof(rnd));
	snprintf(s->id, sizeof(s->id), "%02x%02x%02x%02x", rnd[0], rnd[1],
	    rnd[2], rnd[3]);
	io_init(&s->client, rfd, wfd, "client");
	io_init(&s->backend, -1, -1, "backend");
	net_peer_name(rfd, s->client_addr, sizeof(s->client_addr));
}

static int
gateway_serve(const struct cfg *c, enum session_role role, int rfd,
    int wfd)
{
	static struct session s;

	gateway_session_init(&s, c, role, rfd, wfd);
	log_set_conn(s.id);
	if (io_set_nonblock(rfd) == -1 || io_set_nonblock(wfd) == -1) {
		session_fail(&s, EXIT_TEMP, "cannot set non-blocking");
		goto out;
	}
	net_nodelay(wfd);
	log_msg(LOG_DEBUG, "event=start client=%s", s.client_addr);
	if (c->allow_plaintext_clients && (role == ROLE_SMTP_STARTTLS ||
	    role == ROLE_IMAP_STARTTLS))
		log_msg(LOG_WARNING, "event=warning plaintext clients "
		    "allowed (allow_plaintext_clients, for tests only)");

	if (s.proto == CFG_PROTO_SMTP)
		(void)smtp_run(&s);
	else
		(void)imap_run(&s);
out:
	session_close(&s);
	session_log_end(&s);
	return s.status;
}

int
gateway_main(int argc, char **argv, enum session_role role)
{
	const char *prog = gateway_names[role];
	enum cfg_proto proto = role <= ROLE_SMTPS ? CFG_PROTO_SMTP :
	    CFG_PROTO_IMAP;
	struct gateway_opts o = { 0 };
	static struct cfg c;
	int rfd, wfd, r;

	gateway_harden();
	gateway_signals();
	log_open(prog);
	r = gateway_options(argc, argv, prog, &o);
	if (r != -1)
		return r;
	log_set_verbose(o.verbose);
	if (gateway_client_fds(&rfd, &wfd) == -1)
		return EXIT_CONFIG;

	if (gateway_config(&c, &o, proto) == -1) {
		if (!o.check)
			gateway_config_refusal(role, wfd);
		return EXIT_CONFIG;
	}
	if (o.check) {
		log_user(LOG_INFO, "configuration ok");
		return EXIT_OK;
	}
	r = gateway_serve(&c, role, rfd, wfd);
	cfg_free(&c);
	return r;
}
