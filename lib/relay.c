/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "clock.h"
#include "exitcode.h"
#include "relay.h"

struct relay_dir {
	struct io *src;
	struct io *dst;
	int src_status;		/* exit status if src fails */
	int dst_status;		/* exit status if dst fails */
};

/* Move what src has buffered to dst, then read more from src if its
 * buffer is empty.  Reading only into an empty buffer keeps at most one
 * buffer per direction and lets a stalled dst stall src (backpressure);
 * it also keeps a TLS record that dst must resend where it was.
 * Returns the bytes moved or read, or -1 with the failure recorded. */
static ssize_t
relay_step(struct session *s, struct relay_dir *d)
{
	struct io *src = d->src, *dst = d->dst;
	ssize_t n, moved = 0;

	while (src->len > 0) {
		n = io_write_now(dst, src->buf + src->off, src->len);
		if (n == -1)
			return session_fail(s, d->dst_status, "%s: %s",
			    dst->name, dst->why);
		if (n == 0)
			return moved;
		io_consume(src, n);
		moved += n;
	}

	if (src->eof)
		return moved;
	n = io_fill_now(src);
	if (n == -1)
		return session_fail(s, d->src_status, "%s: %s", src->name,
		    src->why);
	return n > 0 ? moved + n : moved;
}

/* What to wait for: dst writable while src has bytes for it, else src
 * readable while it has not ended. */
static int
relay_want(const struct relay_dir *d, struct pollfd *p)
{
	if (d->src->len > 0) {
		p->fd = d->dst->wfd;
		p->events = POLLOUT;
		return 1;
	}
	if (!d->src->eof) {
		p->fd = d->src->rfd;
		p->events = POLLIN;
		return 1;
	}
	return 0;
}

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
		return session_fail(s, EXIT_CLIENT, "idle timeout");
	if (r == -1)
		return session_fail(s, EXIT_TEMP, "poll: %s",
		    strerror(errno));
	return 0;
}

int
relay_run(struct session *s, unsigned idle_timeout)
{
	struct relay_dir dirs[2] = {
		{ &s->client, &s->backend, EXIT_CLIENT, EXIT_TEMP },
		{ &s->backend, &s->client, EXIT_TEMP, EXIT_CLIENT },
	};
	int64_t idle = (int64_t)idle_timeout * 1000;
	int64_t deadline = clock_ms() + idle;
	ssize_t up, down;

	for (;;) {
		up = relay_step(s, &dirs[0]);
		down = relay_step(s, &dirs[1]);
		if (up == -1 || down == -1)
			return -1;

		/* The backend has said all it will: pass on its end. */
		if (s->backend.eof && s->backend.len == 0) {
			io_shut_write(&s->client);
			session_done(s, "backend closed");
			return 0;
		}

		/* The client has ended: so does the backend's input, but
		 * its replies still go back to the client. */
		if (s->client.eof && s->client.len == 0)
			io_shut_write(&s->backend);

		if (up > 0 || down > 0) {
			deadline = clock_ms() + idle;
			continue;
		}
		if (relay_poll(s, dirs, deadline) == -1)
			return -1;
	}
}
