/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_TLS_H
#define MAILGATE_TLS_H

#include <stdint.h>
#include <gnutls/gnutls.h>

#include "cfg.h"

/*
 * TLS for both legs, on GnuTLS.
 *
 * The process serves one connection, so the credentials and priority
 * caches live in this module (one for the client leg, where we are the
 * server, one for the backend leg, where we are the client) and are
 * loaded once by tls_*_load().
 *
 * Sessions use read(2)/write(2) push and pull functions on the given
 * descriptors, so that stdin/stdout may be pipes as well as sockets.
 * The descriptors are non-blocking; tls_handshake() waits in poll(2)
 * until a deadline.
 *
 * Functions return 0 or -1.  On -1 the reason is written into why
 * (NUL-terminated, at most whylen bytes), with GnuTLS's own error text,
 * the name of an alert received, or the certificate verification
 * status in words.
 */

/* Load the gateway's certificate chain and key and the client-leg
 * priority.  Refuses a key that does not match the certificate and a
 * leaf certificate that is expired or not yet valid. */
int tls_server_load(const struct cfg *c, char *why, size_t whylen);

/* Load the backend trust anchors (c->ca_file or the system store) and
 * the backend-leg priority: TLS 1.2 and 1.3 only, with a verification
 * profile that refuses RSA keys under 2048 bits and SHA-1 signatures. */
int tls_backend_load(const struct cfg *c, char *why, size_t whylen);

/* New session toward the client (server role) on rfd/wfd. */
int tls_server_session(gnutls_session_t *s, int rfd, int wfd,
    char *why, size_t whylen);

/* New session toward the backend (client role) on fd.  The certificate
 * is verified during the handshake against host: the DNS name (a
 * trailing dot is ignored) or, for an IP literal, the IP SAN; server key
 * purpose required, and a subject alternative name: a certificate that
 * names its server only in its common name fails (RFC 6125), although
 * GnuTLS alone would accept it.  SNI carries host unless it is an IP
 * literal. */
int tls_backend_session(gnutls_session_t *s, const char *host, int fd,
    char *why, size_t whylen);

/* Run the handshake until done or until deadline (ms, CLOCK_MONOTONIC
 * as from clock_ms()).  On a verification failure why starts with
 * "certificate " and says what is wrong ("certificate not trusted",
 * "certificate expired", "certificate name mismatch", ...). */
int tls_handshake(gnutls_session_t s, int64_t deadline, char *why,
    size_t whylen);

/* Whether the peer of s has ended its sending side (the transport read
 * end of stream).  GnuTLS then reports GNUTLS_E_AGAIN and the session
 * stays usable for sending. */
int tls_peer_ended(gnutls_session_t s);

/* Whether bytes the peer sent are held in the process (read ahead from
 * the socket, or decrypted and not yet returned).  GNUTLS_E_AGAIN does
 * not always mean that nothing is: after a post-handshake message (a
 * TLS 1.3 session ticket) GnuTLS returns it with the next record
 * already read.  Wait for the descriptor only when this is false. */
int tls_buffered(gnutls_session_t s);

/* "TLS1.3/AES-256-GCM" into buf, with "/resumed" appended for a
 * resumed session. */
void tls_describe(gnutls_session_t s, char *buf, size_t len);

/* Send close_notify without waiting for the peer's (best effort, never
 * blocks for long); then tls_free(). */
void tls_close(gnutls_session_t s);

/* Give back the memory pages of the read-ahead buffer if it is empty. */
void tls_trim(gnutls_session_t s);

/* Free a session made by tls_server_session() or tls_backend_session(),
 * with its transport. */
void tls_free(gnutls_session_t s);

#endif
