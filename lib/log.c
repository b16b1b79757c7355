/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 2048
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"

static const char *log_prog = "mailgate";
static enum cfg_log log_dest = CFG_LOG_SYSLOG;
static int log_level;
static char log_conn[32];

static int
log_journal_present(void)
{
	return access(LOG_JOURNAL_SOCKET, W_OK) == 0;
}

void
log_open(const char *prog)
{
	log_prog = prog;
	log_set_dest(CFG_LOG_AUTO);
}

void
log_set_dest(enum cfg_log dest)
{
	if (dest == CFG_LOG_AUTO)
		dest = log_journal_present() ? CFG_LOG_JOURNAL :
		    CFG_LOG_SYSLOG;
	if (dest == CFG_LOG_SYSLOG && log_dest != CFG_LOG_SYSLOG)
		openlog(log_prog, LOG_PID, LOG_MAIL);
	if (dest != CFG_LOG_SYSLOG && log_dest == CFG_LOG_SYSLOG)
		closelog();
	if (dest == CFG_LOG_SYSLOG)
		openlog(log_prog, LOG_PID, LOG_MAIL);
	log_dest = dest;
}

void
log_set_verbose(int level)
{
	log_level = level;
}

int
log_verbose(void)
{
	return log_level;
}

void
log_set_conn(const char *id)
{
	snprintf(log_conn, sizeof(log_conn), "%s", id);
}

static const char *
log_prio_name(int prio)
{
	switch (prio) {
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_DEBUG:
		return "debug";
	default:
		return "info";
	}
}

/*
 * The journal's native protocol, as systemd documents it: one datagram
 * per entry, each field "NAME=value\n", or, for a value that holds a
 * newline, "NAME\n", the value's length as 64-bit little-endian, the
 * value and "\n".  Spoken here rather than through libsystemd, which
 * with the libraries it pulls in would add about 120 KB of private
 * memory and a tenth of a millisecond of start-up to every connection
 * for this one call.  Returns 0, or -1 if the journal did not take it.
 */
static int log_journal_fd = -1;

struct log_field {
	char head[48];		/* "NAME=" or "NAME\n" + length */
	size_t headlen;
	const char *value;
	size_t len;
};

static void
log_field_set(struct log_field *f, const char *name, const char *value)
{
	size_t len = strlen(value), n = strlen(name), i;

	f->value = value;
	f->len = len;
	if (memchr(value, '\n', len) == NULL) {
		f->headlen = (size_t)snprintf(f->head, sizeof(f->head), "%s=",
		    name);
		return;
	}
	memcpy(f->head, name, n);
	f->head[n++] = '\n';
	for (i = 0; i < 8; i++)
		f->head[n++] = (char)((uint64_t)len >> (8 * i) & 0xff);
	f->headlen = n;
}

static int
log_journal_send(int prio, const char *text)
{
	static const char nl = '\n';
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct log_field f[5];
	struct iovec iov[15];
	struct msghdr m = { 0 };
	char sprio[4], sfac[4];
	int i;

	if (log_journal_fd == -1)
		log_journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC,
		    0);
	if (log_journal_fd == -1)
		return -1;
	snprintf(sprio, sizeof(sprio), "%d", prio);
	snprintf(sfac, sizeof(sfac), "%d", LOG_MAIL >> 3);
	log_field_set(&f[0], "MESSAGE", text);
	log_field_set(&f[1], "PRIORITY", sprio);
	log_field_set(&f[2], "SYSLOG_FACILITY", sfac);
	log_field_set(&f[3], "SYSLOG_IDENTIFIER", log_prog);
	log_field_set(&f[4], "MAILGATE_CONN", log_conn);
	for (i = 0; i < 5; i++) {
		iov[3 * i].iov_base = f[i].head;
		iov[3 * i].iov_len = f[i].headlen;
		iov[3 * i + 1].iov_base = (void *)(uintptr_t)f[i].value;
		iov[3 * i + 1].iov_len = f[i].len;
		iov[3 * i + 2].iov_base = (void *)(uintptr_t)&nl;
		iov[3 * i + 2].iov_len = 1;
	}
	memcpy(sa.sun_path, LOG_JOURNAL_SOCKET, sizeof(LOG_JOURNAL_SOCKET));
	m.msg_name = &sa;
	m.msg_namelen = sizeof(sa);
	m.msg_iov = iov;
	m.msg_iovlen = log_conn[0] != '\0' ? 15 : 12;
	if (sendmsg(log_journal_fd, &m, MSG_NOSIGNAL) == -1)
		return -1;
	return 0;
}

static void
log_emit(int prio, const char *text)
{
	switch (log_dest) {
	case CFG_LOG_STDERR:
		fprintf(stderr, "%s[%ld]: %s: %s\n", log_prog,
		    (long)getpid(), log_prio_name(prio), text);
		fflush(stderr);
		break;
	case CFG_LOG_JOURNAL:
		/* A journal that is gone or full: syslog rather than
		 * losing the line. */
		if (log_journal_send(prio, text) == 0)
			break;
		openlog(log_prog, LOG_PID, LOG_MAIL);
		syslog(prio, "%s", text);
		break;
	default:
		syslog(prio, "%s", text);
		break;
	}
}

static void log_vmsg(int prio, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
log_vmsg(int prio, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n = 0;

	if (prio == LOG_DEBUG && log_level < 1)
		return;
	if (log_conn[0] != '\0')
		n = snprintf(line, sizeof(line), "conn=%s ", log_conn);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	log_emit(prio, line);
}

void
log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap);
	va_end(ap);
}

char *
log_printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t i, n = 0;

	while (srclen > 0 && (src[srclen - 1] == '\n' ||
	    src[srclen - 1] == '\r'))
		srclen--;
	for (i = 0; i < srclen && n + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '"' || ch == '\\')
			ch = '\'';
		else if (ch < 0x20 || ch > 0x7e)
			ch = '?';
		dst[n++] = (char)ch;
	}

	/* Say that the text was cut, so a reader does not take a prefix
	 * for the whole. */
	if (i < srclen && dstlen > 4) {
		n = n < dstlen - 4 ? n : dstlen - 4;
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

void
log_trace(const char *dir, const char *line, size_t len)
{
	char text[512];

	if (log_level < 2)
		return;
	log_printable(text, sizeof(text), line, len);
	log_msg(LOG_DEBUG, "trace %s \"%s\"", dir, text);
}

static int
log_stderr_is_socket(void)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) == -1)
		return 1;
	return S_ISSOCK(st.st_mode);
}

void
log_user(int prio, const char *fmt, ...)
{
	va_list ap;

	if (log_dest != CFG_LOG_STDERR && !log_stderr_is_socket()) {
		va_start(ap, fmt);
		fprintf(stderr, "%s: ", log_prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap);
	va_end(ap);
}
