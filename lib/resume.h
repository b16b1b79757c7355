/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_RESUME_H
#define MAILGATE_RESUME_H

#include <gnutls/gnutls.h>

#include "cfg.h"

/*
 * Resuming the backend leg's TLS session in the next process
 * (backend_session_cache): each instance leaves the backend's latest
 * session ticket in a file of a private directory, and the next one
 * offers it, which spares both the backend's certificate check and its
 * signature.  A resumed session proves that the backend holds the key
 * of a session that was verified in full, against the same settings,
 * at most an hour ago; a backend that declines gets a full handshake
 * with every check.
 */

/* Check the directory (absolute, ours, mode 0700) and fix the cache
 * file for proto's backend.  Does nothing when the setting is unset or
 * the backend leg is plaintext.  -1 with why set for a relative path;
 * for a directory that is missing or not private too if strict (a
 * configuration check), else a warning is logged and the cache is not
 * used. */
int resume_setup(const struct cfg *c, enum cfg_proto proto, int strict,
    char *why, size_t whylen);

/* Before the handshake: offer the cached session, if there is a usable
 * one.  -1 if GnuTLS refused it part-way: the session must then be
 * made anew, without it. */
int resume_load(gnutls_session_t s);

/* Before the handshake: save each TLS 1.3 ticket as it arrives. */
void resume_watch(gnutls_session_t s);

/* After the handshake: save a TLS 1.2 session. */
void resume_handshake_done(gnutls_session_t s);

#endif
