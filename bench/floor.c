/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * floor: the least a per-connection TLS program costs before it does
 * any work: exec, GnuTLS start-up and loading one certificate and key,
 * without GnuTLS's sign-and-verify check that the two match (a
 * program can compare the public keys instead, as mailgate does).
 * Run per connection like a gateway, it then exits, which closes the
 * connection.
 *
 * usage: floor CERT KEY
 */
#include <stdio.h>

#include <gnutls/gnutls.h>

int
main(int argc, char **argv)
{
	gnutls_certificate_credentials_t cred;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: floor CERT KEY\n");
		return 2;
	}
	if ((r = gnutls_global_init()) < 0 ||
	    (r = gnutls_certificate_allocate_credentials(&cred)) < 0)
		goto fail;
	gnutls_certificate_set_flags(cred,
	    GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
	if ((r = gnutls_certificate_set_x509_key_file(cred, argv[1], argv[2],
	    GNUTLS_X509_FMT_PEM)) < 0)
		goto fail;
	gnutls_certificate_free_credentials(cred);
	gnutls_global_deinit();
	return 0;
fail:
	fprintf(stderr, "floor: %s\n", gnutls_strerror(r));
	return 1;
}
