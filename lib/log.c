/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static const char *log_prog = "mailgate";
static enum cfg_log log_dest = CFG_LOG_SYSLOG;
static int log_level;
static char log_conn[32];

static int
log_journal_present(void)
{
	return access("/run/systemd/journal/socket", W_OK) == 0;
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
		sd_journal_send("MESSAGE=%s", text, "PRIORITY=%d", prio,
		    "SYSLOG_FACILITY=%d", LOG_MAIL >> 3,
		    "SYSLOG_IDENTIFIER=%s", log_prog,
		    "MAILGATE_CONN=%s", log_conn, NULL);
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
