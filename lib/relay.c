/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <string.h>

#include "clock.h"
#include "exitcode.h"
#include "relay.h"

/* Room for one more TLS record (16 KiB of data) in a leg's buffer. */
#define RELAY_ROOM	16384

struct relay_dir {
	struct io *src;
	struct io *dst;
	int whole_lines;	/* hold back an unfinished last line */
	int src_status;		/* exit status if src fails */
	int dst_status;		/* exit status if dst fails */
	int drained;		/* src had nothing at the last read */
};

/* While data flows one way, the other side is read again only after
 * this many rounds without a poll(2); until then its last read found
 * nothing, and trying again each round would cost a system call per
 * record relayed. */
#define RELAY_RECHECK	16

/*
 * Each record GnuTLS receives or sends passes through buffers it
 * allocates and frees; the freed pages stay with the process.  Once the
 * relay has been quiet this long after traffic, they are given back:
 * an IDLE connection may be held for hours, one process each.
 */
#define RELAY_TRIM_MS	200

/* Move what src has buffered to dst, then read more from src while its
 * buffer has room.  A full buffer is not read into, so a stalled dst
 * stalls src (backpressure) and each direction holds one buffer.
 * Returns the bytes moved or read, -1 with the failure recorded, or -2
 * when the client has gone (the session is over, normally). */
/*
 * How much of src's buffer may go to dst now.  Toward the client the
 * last line waits for its end: a backend that dies in the middle of
 * "250 2.0.0 Ok: queued" must not leave the client a line that reads
 * as success.  A buffer that cannot take another record goes out as it
 * is (long binary literals have no line ends).
 */
static size_t
relay_sendable(const struct relay_dir *d)
{
	const struct io *src = d->src;
	size_t n = src->len;

	if (!d->whole_lines || sizeof(src->buf) - src->len < RELAY_ROOM)
		return n;
	while (n > 0 && src->buf[src->off + n - 1] != '\n')
		n--;
	return n;
}

static ssize_t
relay_step(struct session *s, struct relay_dir *d)
{
	struct io *src = d->src, *dst = d->dst;
	ssize_t n, moved = 0;
	size_t k;

	while ((k = relay_sendable(d)) > 0) {
		n = io_write_now(dst, src->buf + src->off, k);

		/* A client that closed without waiting for the last reply
		 * (imaplib after BYE, for one) cannot take it: not a
		 * failure of the session. */
		if (n == -1 && dst->eof && dst == &s->client) {
			session_done(s, "client closed");
			return -2;
		}
		if (n == -1)
			return session_fail(s, d->dst_status, "%s: %s",
			    dst->name, dst->why);
		if (n == 0)
			return moved;
		io_consume(src, n);
		moved += n;
	}

	/* Take what is there while a whole record still fits: fewer
	 * wake-ups per megabyte, which is where a relay's time goes. */
	while (!src->eof && !d->drained &&
	    sizeof(src->buf) - src->len >= RELAY_ROOM) {
		n = io_fill_now(src);
		if (n == -1)
			return session_fail(s, d->src_status, "%s: %s",
			    src->name, src->why);
		if (n == -2) {
			d->drained = 1;
			break;
		}
		moved += n;
	}
	return moved;
}

/* What to wait for: dst writable while src has bytes for it, else src
 * readable while it has not ended. */
static int
relay_want(const struct relay_dir *d, struct pollfd *p)
{
	if (relay_sendable(d) > 0) {
		p->fd = d->dst->wfd;
		p->events = POLLOUT;
		return 1;
	}
	if (!d->src->eof &&
	    sizeof(d->src->buf) - d->src->len >= RELAY_ROOM) {
		p->fd = d->src->rfd;
		p->events = POLLIN;
		return 1;
	}
	return 0;
}

/* Wait for either direction.  0 when something is ready, 1 at the
 * deadline, -1 on failure (recorded). */
static int
relay_poll(struct session *s, struct relay_dir *dirs, int64_t deadline)
{
	struct pollfd p[2];
	int n = 0, r;

	n += relay_want(&dirs[0], &p[n]);
	n += relay_want(&dirs[1], &p[n]);
	do {
		r = poll(p, n, clock_left(deadline));
	} while (r == -1 && errno == EINTR && !io_stop);
	if (r == 0)
		return 1;
	if (r == -1)
		return session_fail(s, EXIT_TEMP, "poll: %s",
		    strerror(errno));
	return 0;
}

/*
 * After the client has ended its side, the backend still gets to answer
 * what it was sent: mail servers drop commands they have not finished
 * when their input ends, so the backend's input is ended only once it
 * has been quiet this long (or has closed by itself, as it does after
 * QUIT or LOGOUT).
 */
#define RELAY_LINGER_MS	2000

/* The backend has said all it will: pass on its end.  If it had not
 * answered what it was last sent, the client is told in its protocol's
 * words (lost), so that a message cut off mid-DATA is not taken for
 * delivered, and the session counts as failed.  An answer cut off in
 * the middle of a line fails the session too, though nothing can be
 * added to it. */
static int
relay_backend_done(struct session *s, int unanswered, const char *lost)
{
	int cut = s->client.last_out != '\n';

	/* A last line the backend never finished is dropped, unread. */
	if (s->backend.len > 0) {
		io_discard(&s->backend);
		unanswered = 1;
	}
	if (unanswered && !cut && lost != NULL)
		session_tell(s, lost);
	io_shut_write(&s->client);
	if (unanswered || cut)
		return session_fail(s, EXIT_TEMP, "backend closed before "
		    "answering");
	session_done(s, "backend closed");
	return 0;
}

/* The relay ends on our side (SIGTERM, idle timeout): if both sides
 * are between a command and its answer's end, the client is told in its
 * protocol's words (line); in the middle of a message or a literal it
 * could not tell them from data. */
static void
relay_goodbye(struct session *s, int unanswered, const char *line)
{
	if (!unanswered && s->client.last_out == '\n' &&
	    s->client.len == 0 && s->backend.len == 0)
		session_tell(s, line);
}

/* The client ended and the backend went quiet: end both. */
static int
relay_client_done(struct session *s)
{
	io_shut_write(&s->backend);
	io_shut_write(&s->client);
	session_done(s, "client closed");
	return 0;
}

int
relay_run(struct session *s, unsigned idle_timeout, const char *lost)
{
	struct relay_dir dirs[2] = {
		{ &s->client, &s->backend, 0, EXIT_CLIENT, EXIT_TEMP, 0 },
		{ &s->backend, &s->client, 1, EXIT_TEMP, EXIT_CLIENT, 0 },
	};
	unsigned rounds = 0;
	int64_t idle = (int64_t)idle_timeout * 1000;
	int64_t deadline = clock_ms() + idle, until;
	uint64_t answered = s->backend.nout;
	ssize_t up, down;
	int client_done, r, used = 0;

	/* Set-up is over: certificates, trust anchors and handshake state
	 * were freed.  Give the pages back, since an idle IMAP connection
	 * may stay for hours and there is one process per connection. */
	malloc_trim(0);

	for (;;) {
		up = relay_step(s, &dirs[0]);
		down = relay_step(s, &dirs[1]);
		if (up == -2 || down == -2)
			return 0;
		if (up == -1 || down == -1)
			return -1;

		/* Whatever the backend was sent so far it has now had a
		 * chance to answer. */
		if (down > 0)
			answered = s->backend.nout;
		if (s->backend.eof && relay_sendable(&dirs[1]) == 0)
			return relay_backend_done(s,
			    s->backend.nout > answered, lost);

		client_done = s->client.eof && s->client.len == 0;
		if (up > 0 || down > 0)
			deadline = clock_ms() + idle;
		if (client_done && deadline > clock_ms() + RELAY_LINGER_MS)
			deadline = clock_ms() + RELAY_LINGER_MS;
		if (up > 0 || down > 0) {
			used = 1;
			if (++rounds % RELAY_RECHECK == 0)
				dirs[0].drained = dirs[1].drained = 0;
			continue;
		}
		dirs[0].drained = dirs[1].drained = 0;

		until = deadline;
		if (used && deadline > clock_ms() + RELAY_TRIM_MS)
			until = clock_ms() + RELAY_TRIM_MS;
		r = relay_poll(s, dirs, until);
		if (r == 1 && until < deadline) {
			malloc_trim(0);
			io_trim(&s->client);
			io_trim(&s->backend);
			used = 0;
			continue;
		}
		if (r == -1 && io_stop)
			relay_goodbye(s, s->backend.nout > answered,
			    s->words->shutdown);
		if (r == -1)
			return session_fail(s, EXIT_TEMP, "terminated");
		if (r == 1 && client_done)
			return relay_client_done(s);
		if (r == 1) {
			relay_goodbye(s, s->backend.nout > answered,
			    s->words->timeout);
			return session_fail(s, EXIT_CLIENT, "idle timeout");
		}
	}
}
