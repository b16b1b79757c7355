/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_NET_H
#define MAILGATE_NET_H

#include <stddef.h>
#include <stdint.h>

/* Connect to host (a DNS name or an IP literal) on port, trying each
 * address in turn until deadline.  The socket returned is non-blocking
 * with TCP_NODELAY set.  On -1, why says what failed. */
int net_connect(const char *host, unsigned port, int64_t deadline,
    char *why, size_t whylen);

/* The client's address as "ADDR:PORT" (IPv4-mapped IPv6 shown as IPv4),
 * from getpeername() on fd, else from REMOTE_ADDR/REMOTE_PORT or
 * TCPREMOTEIP/TCPREMOTEPORT, else "local". */
void net_peer_name(int fd, char *buf, size_t len);

/* Set TCP_NODELAY if fd is a TCP socket; harmless otherwise. */
void net_nodelay(int fd);

/* Acknowledge the peer's next segments at once rather than delayed.
 * Not sticky in Linux: set again where a reply is awaited. */
void net_quickack(int fd);

/* 1 if host is an IPv4 or IPv6 literal. */
int net_is_ip_literal(const char *host);

#endif
