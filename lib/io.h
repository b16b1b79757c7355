/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_IO_H
#define MAILGATE_IO_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

/*
 * One leg of a connection: a pair of non-blocking descriptors (the same
 * socket twice, or stdin and stdout), a TLS session once TLS is up, and
 * a read buffer.  The protocol code reads lines out of the buffer; the
 * relay moves the buffer's bytes to the other leg, so nothing is copied
 * twice.
 *
 * Functions return 0 (or a count) on success and -1 on failure with
 * io->why set to a short reason ("timeout", "connection reset", the
 * GnuTLS error text, ...) for the summary line.
 */

/* A TLS record carries at most 16 KiB; the relay reads up to two
 * before writing.  SASL lines may be long too (RFC 4954 suggests 12288
 * octets, OAuth tokens exceed that with their framing). */
#define IO_BUFSZ	32768
#define IO_LINE_MAX	(IO_BUFSZ - 1)

struct io {
	int rfd, wfd;
	gnutls_session_t tls;		/* NULL while in plaintext */
	const char *name;		/* "client" or "backend" */
	unsigned char buf[IO_BUFSZ];
	size_t off, len;		/* buffered bytes: buf[off..off+len) */
	uint64_t nin, nout;		/* application bytes read, written */
	size_t send_pending;		/* TLS record retry size, or 0 */
	int eof;			/* the peer ended its sending side */
	int wshut;			/* we ended our sending side */
	unsigned char last_out;		/* last byte written, '\n' at first */
	const char *why;		/* reason of the last failure */
	char whybuf[160];
};

void io_init(struct io *io, int rfd, int wfd, const char *name);

/* Make fd non-blocking (0 or -1). */
int io_set_nonblock(int fd);

/* Read once what is available into the free end of the buffer, waiting
 * until deadline if nothing is.  Returns the count, 0 at end of stream
 * (io->eof set), -1 on error or timeout. */
ssize_t io_fill(struct io *io, int64_t deadline);

/* Read without waiting: like io_fill, but -2 when nothing is there. */
ssize_t io_fill_now(struct io *io);

/* Wait for a complete line (ending in LF) at the start of the buffer.
 * Returns its length including the LF; the line stays at
 * io->buf + io->off until io_consume().  Returns 0 at end of stream
 * before a whole line, -1 on error, timeout or a line longer than
 * IO_LINE_MAX. */
ssize_t io_line(struct io *io, int64_t deadline);

/* Drop n buffered bytes from the front, wiping them. */
void io_consume(struct io *io, size_t n);

/* Drop everything buffered, wiping it. */
void io_discard(struct io *io);

/* Give back the memory pages of the buffers if they are empty: their
 * contents are then undefined until written. */
void io_trim(struct io *io);

/* Tell the kernel it may drop the whole pages inside p..p+len: they
 * read as zero or as the file's bytes afterwards, never as anything
 * the process wrote. */
void mem_discard(void *p, size_t len);

/* Write all of data before deadline, or -1. */
int io_write(struct io *io, const void *data, size_t len,
    int64_t deadline);

/* Write as much as possible without waiting.  Returns the count written
 * (0 if it would block), or -1. */
ssize_t io_write_now(struct io *io, const void *data, size_t len);

/* End our sending side: close_notify on TLS, then shutdown(SHUT_WR) or
 * close() for a pipe.  Best effort. */
void io_shut_write(struct io *io);

/* Set by the SIGTERM handler: every wait then fails at once, so that
 * the session ends with its summary line instead of being cut off. */
extern volatile sig_atomic_t io_stop;

/* Wait until fd is ready for events or deadline.  1 ready, 0 timeout,
 * -1 error or io_stop (errno EINTR). */
int io_wait(int fd, short events, int64_t deadline);

#endif
