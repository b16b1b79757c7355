/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * floor: the least a per-connection TLS program costs before it does
 * any work: exec, GnuTLS start-up and loading one certificate and key,
 * without GnuTLS's sign-and-verify check that the two match (a
 * program can compare the public keys instead, as mailgate does).
 * Run per connection like a gateway, it then exits, which closes the
 * connection.
 *
 * With --hold it serves a TLS handshake on stdin/stdout and then waits
 * for the client to close, reading and dropping what it sends: the
 * least memory a per-connection process holding one idle TLS session
 * can take (a gateway holds two).
 *
 * usage: floor [--hold] CERT KEY
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>

static int
hold(gnutls_certificate_credentials_t cred)
{
	gnutls_session_t s;
	char buf[4096];
	int r;

	if ((r = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_TICKETS)) < 0 ||
	    (r = gnutls_set_default_priority(s)) < 0 ||
	    (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
	    cred)) < 0) {
		fprintf(stderr, "floor: %s\n", gnutls_strerror(r));
		return 1;
	}
	gnutls_transport_set_int2(s, 0, 1);
	do {
		r = gnutls_handshake(s);
	} while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) {
		fprintf(stderr, "floor: handshake: %s\n", gnutls_strerror(r));
		return 1;
	}
	/* As a gateway does once set up: the credentials' memory back. */
	gnutls_certificate_free_credentials(cred);
	malloc_trim(0);
	while ((r = (int)gnutls_record_recv(s, buf, sizeof(buf))) != 0)
		if (r < 0 && gnutls_error_is_fatal(r))
			break;
	gnutls_deinit(s);
	return 0;
}

int
main(int argc, char **argv)
{
	gnutls_certificate_credentials_t cred;
	int holding = argc == 4 && strcmp(argv[1], "--hold") == 0;
	int r;

	if (argc != 3 + holding) {
		fprintf(stderr, "usage: floor [--hold] CERT KEY\n");
		return 2;
	}
	if ((r = gnutls_global_init()) < 0 ||
	    (r = gnutls_certificate_allocate_credentials(&cred)) < 0)
		goto fail;
	gnutls_certificate_set_flags(cred,
	    GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
	if ((r = gnutls_certificate_set_x509_key_file(cred, argv[1 + holding],
	    argv[2 + holding], GNUTLS_X509_FMT_PEM)) < 0)
		goto fail;
	if (holding)
		return hold(cred);
	gnutls_certificate_free_credentials(cred);
	gnutls_global_deinit();
	return 0;
fail:
	fprintf(stderr, "floor: %s\n", gnutls_strerror(r));
	return 1;
}
