/* SPDX-License-Identifier: GPL-3.0-or-later */
#define _DEFAULT_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "io.h"
#include "net.h"

int
net_is_ip_literal(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;
}

void
net_nodelay(int fd)
{
	int one = 1;

	/* Without it a write-write-read exchange waits for the peer's
	 * delayed ACK, about 40 ms per greeting. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
net_quickack(int fd)
{
	int one = 1;

	/* A server that writes its greeting right after its last
	 * handshake record, without TCP_NODELAY, holds the greeting until
	 * that record is acknowledged: with delayed ACKs, about 40 ms. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

/* Connect one address.  Returns the socket, or -1 with errno set. */
static int
net_try(const struct addrinfo *ai, int64_t deadline)
{
	socklen_t sl = sizeof(int);
	int fd, err = 0, r;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
	    ai->ai_protocol);
	if (fd == -1)
		return -1;
	if (io_set_nonblock(fd) == -1)
		goto fail;
	net_nodelay(fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	r = io_wait(fd, POLLOUT, deadline);
	if (r != 1) {
		errno = r == 0 ? ETIMEDOUT : errno;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
		goto fail;
	if (err == 0)
		return fd;
	errno = err;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int
net_connect(const char *host, unsigned port, int64_t deadline, char *why,
    size_t whylen)
{
	/* No AI_ADDRCONFIG: it hides ::1 and 127.0.0.1 on a host whose
	 * only addresses are loopback ones. */
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char service[8];
	int fd = -1, r, err = 0;

	snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host,
		    gai_strerror(r));
		return -1;
	}

	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
		fd = net_try(ai, deadline);
		if (fd == -1)
			err = errno;
		if (clock_left(deadline) == 0)
			break;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(why, whylen, "cannot connect to %s port %u: %s",
		    host, port, err == ETIMEDOUT ? "timeout" : strerror(err));
	return fd;
}

static void
net_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
		snprintf(buf, len, "%s:%u", addr, port);
		return;
	}

	const struct sockaddr_in6 *sin6 = (const void *)ss;

	port = ntohs(sin6->sin6_port);
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr,
		    sizeof(addr));
	else
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr,
	    port);
}

static int
net_env_peer(const char *ak, const char *pk, char *buf, size_t len)
{
	const char *a = getenv(ak), *p = getenv(pk);

	if (a == NULL || *a == '\0' || strlen(a) > 64)
		return -1;
	if (p == NULL || strlen(p) > 5 || strspn(p, "0123456789") !=
	    strlen(p))
		p = "0";
	snprintf(buf, len, strchr(a, ':') ? "[%s]:%s" : "%s:%s", a, p);
	return 0;
}

void
net_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		net_format(&ss, buf, len);
		return;
	}
	if (net_env_peer("REMOTE_ADDR", "REMOTE_PORT", buf, len) == 0)
		return;
	if (net_env_peer("TCPREMOTEIP", "TCPREMOTEPORT", buf, len) == 0)
		return;
	snprintf(buf, len, "local");
}
