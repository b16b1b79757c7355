/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * crypto-limit: the CPU a relay cannot avoid for bulk data.  A TLS
 * relay decrypts every record from one peer and encrypts it again for
 * the other; this does exactly that for 100 MB in 16 KB records with
 * GnuTLS AES-GCM on one core, plus a copy in and a copy out, and prints
 * the CPU seconds it took.
 *
 * usage: crypto-limit [MB]     (default 100)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#define RECORD	16384
#define TAG	16

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
run(gnutls_cipher_algorithm_t alg, const char *name, long mb, int quiet)
{
	unsigned char key[32], nonce[12];
	static unsigned char plain[RECORD], wire_in[RECORD + TAG],
	    wire_out[RECORD + TAG], app[RECORD], sock_in[RECORD + TAG];
	gnutls_aead_cipher_hd_t in, out;
	gnutls_datum_t k;
	long records = mb * 1024 * 1024 / RECORD, i;
	size_t len;
	double t0, t1;
	int r;

	memset(key, 0x42, sizeof(key));
	memset(plain, 'x', sizeof(plain));
	k.data = key;
	k.size = gnutls_cipher_get_key_size(alg);
	if ((r = gnutls_aead_cipher_init(&in, alg, &k)) < 0 ||
	    (r = gnutls_aead_cipher_init(&out, alg, &k)) < 0) {
		fprintf(stderr, "%s: %s\n", name, gnutls_strerror(r));
		return 1;
	}
	memset(nonce, 0, sizeof(nonce));
	/* One valid record from the "client" to decrypt over and over. */
	len = sizeof(wire_in);
	if ((r = gnutls_aead_cipher_encrypt(in, nonce, sizeof(nonce), NULL, 0,
	    TAG, plain, RECORD, wire_in, &len)) < 0) {
		fprintf(stderr, "%s: %s\n", name, gnutls_strerror(r));
		return 1;
	}

	t0 = cpu_now();
	for (i = 0; i < records; i++) {
		size_t plen = sizeof(app), olen = sizeof(wire_out);

		memcpy(sock_in, wire_in, len);	/* kernel -> user copy */
		r = gnutls_aead_cipher_decrypt(in, nonce, sizeof(nonce), NULL,
		    0, TAG, sock_in, len, app, &plen);
		if (r < 0 || plen != RECORD) {
			fprintf(stderr, "%s: decrypt: %s\n", name,
			    gnutls_strerror(r));
			return 1;
		}
		nonce[11] = (unsigned char)i;	/* a fresh nonce per record */
		r = gnutls_aead_cipher_encrypt(out, nonce, sizeof(nonce), NULL,
		    0, TAG, app, plen, wire_out, &olen);
		nonce[11] = 0;
		if (r < 0) {
			fprintf(stderr, "%s: encrypt: %s\n", name,
			    gnutls_strerror(r));
			return 1;
		}
		memcpy(sock_in, wire_out, olen);	/* user -> kernel copy */
	}
	t1 = cpu_now();
	if (!quiet)
		printf("%s %ld MB %.4f cpu_s %.4f cpu_s_per_100MB\n", name, mb,
	    t1 - t0, (t1 - t0) * 100.0 / mb);
	gnutls_aead_cipher_deinit(in);
	gnutls_aead_cipher_deinit(out);
	return 0;
}

int
main(int argc, char **argv)
{
	long mb = argc > 1 ? atol(argv[1]) : 100;
	int bad = 0;

	if (mb <= 0)
		mb = 100;
	gnutls_global_init();
	/* Warm up: CPU frequency, caches, lazy loading. */
	bad |= run(GNUTLS_CIPHER_AES_128_GCM, "AES-128-GCM", 20, 1);
	bad |= run(GNUTLS_CIPHER_AES_128_GCM, "AES-128-GCM", mb, 0);
	bad |= run(GNUTLS_CIPHER_AES_256_GCM, "AES-256-GCM", mb, 0);
	bad |= run(GNUTLS_CIPHER_CHACHA20_POLY1305, "CHACHA20-POLY1305", mb, 0);
	gnutls_global_deinit();
	return bad;
}
