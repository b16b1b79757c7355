/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "io.h"
#include "tls.h"

/* Larger writes are cut into records of this size, the TLS maximum. */
#define IO_RECORD	16384

volatile sig_atomic_t io_stop;

void
io_init(struct io *io, int rfd, int wfd, const char *name)
{
	/* Field by field: clearing the buffer would make all its pages
	 * resident in every process, idle connections included. */
	io->tls = NULL;
	io->off = io->len = 0;
	io->nin = io->nout = 0;
	io->send_pending = 0;
	io->eof = io->wshut = 0;
	io->last_out = '\n';
	io->whybuf[0] = '\0';
	io->rfd = rfd;
	io->wfd = wfd;
	io->name = name;
	io->why = "";
}

int
io_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return 0;
}

int
io_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, clock_left(deadline));
	} while (r == -1 && errno == EINTR && !io_stop);
	return r > 0 ? 1 : r;
}

static int
io_fail(struct io *io, const char *why)
{
	io->why = why;
	return -1;
}

static int
io_fail_errno(struct io *io, int err)
{
	if (err == ECONNRESET)
		return io_fail(io, "connection reset");
	if (err == EPIPE)
		return io_fail(io, "connection closed");
	snprintf(io->whybuf, sizeof(io->whybuf), "%s", strerror(err));
	return io_fail(io, io->whybuf);
}

/* A wait that did not end in readiness. */
static int
io_fail_wait(struct io *io, int r)
{
	if (r == 0)
		return io_fail(io, "timeout");
	if (io_stop)
		return io_fail(io, "terminated");
	return io_fail_errno(io, errno);
}

static int
io_fail_tls(struct io *io, int err)
{
	/* The transport failed under TLS: errno from our push or pull
	 * function says how ("connection reset" rather than "Error in
	 * the pull function"). */
	if ((err == GNUTLS_E_PULL_ERROR || err == GNUTLS_E_PUSH_ERROR) &&
	    errno != 0)
		return io_fail_errno(io, errno);
	if (err == GNUTLS_E_WARNING_ALERT_RECEIVED ||
	    err == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		snprintf(io->whybuf, sizeof(io->whybuf), "TLS alert %s",
		    gnutls_alert_get_name(gnutls_alert_get(io->tls)));
		return io_fail(io, io->whybuf);
	}
	snprintf(io->whybuf, sizeof(io->whybuf), "TLS: %s",
	    gnutls_strerror(err));
	return io_fail(io, io->whybuf);
}

/* Make room at the end of the buffer by moving the unread bytes to the
 * front. */
static void
io_compact(struct io *io)
{
	if (io->off == 0)
		return;
	memmove(io->buf, io->buf + io->off, io->len);
	explicit_bzero(io->buf + io->len, io->off);
	io->off = 0;
}

/* One read.  Returns the count, 0 at end of stream, -2 if it would
 * block, -1 on error. */
static ssize_t
io_read_once(struct io *io)
{
	unsigned char *p;
	size_t room;
	ssize_t n;

	io_compact(io);
	p = io->buf + io->off + io->len;
	room = sizeof(io->buf) - io->off - io->len;
	if (room == 0)
		return io_fail(io, "buffer full");

	if (io->tls != NULL) {
		/* Again at once while bytes are held, unless GnuTLS is
		 * blocked on writing (its answer to a key update): that
		 * would spin until the peer reads.
		 * XXX: the caller then waits for input, not for room to
		 * write; a peer that asks for a key update and stops
		 * reading stalls this leg until the timeout. */
		do {
			n = gnutls_record_recv(io->tls, p, room);
		} while (n == GNUTLS_E_INTERRUPTED ||
		    (n == GNUTLS_E_AGAIN &&
		    gnutls_record_get_direction(io->tls) == 0 &&
		    tls_buffered(io->tls)));
		if (n == GNUTLS_E_AGAIN && tls_peer_ended(io->tls))
			n = 0;
		else if (n == GNUTLS_E_AGAIN)
			return -2;
		/* A peer that closes without close_notify is common among
		 * mail clients; the protocols delimit their own data. */
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			n = 0;
		if (n < 0)
			return io_fail_tls(io, (int)n);
	} else {
		do {
			n = read(io->rfd, p, room);
		} while (n == -1 && errno == EINTR);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -2;
		if (n == -1)
			return io_fail_errno(io, errno);
	}

	if (n == 0)
		io->eof = 1;
	io->len += n;
	io->nin += n;
	return n;
}

ssize_t
io_fill_now(struct io *io)
{
	return io_read_once(io);
}

ssize_t
io_fill(struct io *io, int64_t deadline)
{
	ssize_t n;
	int r;

	for (;;) {
		n = io_read_once(io);
		if (n != -2)
			return n;
		r = io_wait(io->rfd, POLLIN, deadline);
		if (r != 1)
			return io_fail_wait(io, r);
	}
}

ssize_t
io_line(struct io *io, int64_t deadline)
{
	size_t scanned = 0;
	unsigned char *lf;
	ssize_t n;

	for (;;) {
		lf = memchr(io->buf + io->off + scanned, '\n',
		    io->len - scanned);
		if (lf != NULL)
			return lf - (io->buf + io->off) + 1;
		scanned = io->len;
		if (io->len >= IO_LINE_MAX)
			return io_fail(io, "line too long");
		if (io->eof)
			return 0;
		n = io_fill(io, deadline);
		if (n <= 0)
			return n;
	}
}

void
mem_discard(void *p, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)p + len) & ~(page - 1);

	if (end > start)
		(void)madvise((void *)start, end - start, MADV_DONTNEED);
}

void
io_trim(struct io *io)
{
	if (io->len == 0)
		mem_discard(io->buf, sizeof(io->buf));
	if (io->tls != NULL)
		tls_trim(io->tls);
}

void
io_consume(struct io *io, size_t n)
{
	explicit_bzero(io->buf + io->off, n);
	io->off += n;
	io->len -= n;
	if (io->len == 0)
		io->off = 0;
}

void
io_discard(struct io *io)
{
	io_consume(io, io->len);
}

ssize_t
io_write_now(struct io *io, const void *data, size_t len)
{
	ssize_t n;

	if (io->tls != NULL) {
		/* After GNUTLS_E_AGAIN the same record must be offered
		 * again, so the size is remembered. */
		size_t size = io->send_pending;

		if (size == 0)
			size = len < IO_RECORD ? len : IO_RECORD;
		do {
			n = gnutls_record_send(io->tls, data, size);
		} while (n == GNUTLS_E_INTERRUPTED);
		if (n == GNUTLS_E_AGAIN) {
			io->send_pending = size;
			return 0;
		}
		io->send_pending = 0;
		if (n < 0)
			return io_fail_tls(io, (int)n);
	} else {
		do {
			n = write(io->wfd, data, len);
		} while (n == -1 && errno == EINTR);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n == -1)
			return io_fail_errno(io, errno);
	}
	io->nout += n;
	if (n > 0)
		io->last_out = ((const unsigned char *)data)[n - 1];
	return n;
}

int
io_write(struct io *io, const void *data, size_t len, int64_t deadline)
{
	const unsigned char *p = data;
	ssize_t n;
	int r;

	while (len > 0) {
		n = io_write_now(io, p, len);
		if (n == -1)
			return -1;
		p += n;
		len -= n;
		if (len == 0 || n > 0)
			continue;
		r = io_wait(io->wfd, POLLOUT, deadline);
		if (r != 1)
			return io_fail_wait(io, r);
	}
	return 0;
}

static int
io_is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void
io_shut_write(struct io *io)
{
	int64_t deadline = clock_ms() + 1000;
	int r;

	if (io->wshut)
		return;
	io->wshut = 1;

	/* close_notify tells the peer that nothing was cut off; give a
	 * slow peer a second to take it, no more. */
	while (io->tls != NULL) {
		r = gnutls_bye(io->tls, GNUTLS_SHUT_WR);
		if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
			break;
		if (io_wait(io->wfd, POLLOUT, deadline) <= 0)
			break;
	}

	if (io_is_socket(io->wfd))
		shutdown(io->wfd, SHUT_WR);
	else if (io->wfd != io->rfd)
		close(io->wfd);
}
