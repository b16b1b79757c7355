/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * crypto-limit: the CPU a relay cannot avoid for bulk data.  A TLS
 * relay decrypts every record from one peer and encrypts it again for
 * the other; this does exactly that for 100 MB in 16 KB records with
 * GnuTLS AES-GCM on one core, and prints the CPU seconds it took:
 *
 *   ALG          with a memory copy in and out (no kernel at all)
 *   ALG+sockets  reading the records from one loopback TCP connection
 *                and writing them to another, with blocking reads of
 *                up to 64 KB and writes of up to 64 KB, as a relay
 *                does; the processes at the far ends are not counted
 *
 * usage: crypto-limit [MB]     (default 100)
 */
#define _POSIX_C_SOURCE 200809L

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#define RECORD	16384
#define TAG	16
#define WIRE	(RECORD + TAG)
#define CHUNK	65536

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

/* user + system CPU of this process alone */
static double
rusage_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
listener(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)sa, len) == -1 ||
	    listen(fd, 1) == -1 ||
	    getsockname(fd, (struct sockaddr *)sa, &len) == -1) {
		perror("crypto-limit: listen");
		exit(1);
	}
	return fd;
}

static int
dial(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd == -1 ||
	    connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1) {
		perror("crypto-limit: connect");
		_exit(1);
	}
	return fd;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The far ends, in processes of their own: one writes the same valid
 * record over and over, the other reads everything and drops it. */
static pid_t
feeder(const struct sockaddr_in *sa, const unsigned char *wire, long n)
{
	static unsigned char chunk[4 * WIRE];
	pid_t pid = fork();
	long i;
	int fd;

	if (pid != 0)
		return pid;
	fd = dial(sa);
	for (i = 0; i < 4; i++)
		memcpy(chunk + i * WIRE, wire, WIRE);
	for (i = 0; i + 4 <= n; i += 4)
		if (write_all(fd, chunk, sizeof(chunk)) == -1)
			_exit(1);
	for (; i < n; i++)
		if (write_all(fd, wire, WIRE) == -1)
			_exit(1);
	_exit(0);
}

static pid_t
drainer(const struct sockaddr_in *sa)
{
	static unsigned char sink[4 * CHUNK];
	pid_t pid = fork();
	int fd;

	if (pid != 0)
		return pid;
	fd = dial(sa);
	while (read(fd, sink, sizeof(sink)) > 0)
		;
	_exit(0);
}

static int
run_sockets(gnutls_cipher_algorithm_t alg, const char *name, long mb)
{
	static unsigned char in[CHUNK + WIRE], out[CHUNK], app[RECORD],
	    wire[WIRE];
	unsigned char key[32], nonce[12];
	long records = mb * 1024 * 1024 / RECORD, done = 0;
	gnutls_aead_cipher_hd_t dec, enc;
	struct sockaddr_in sa_in, sa_out;
	size_t have = 0, off, olen, plen, len = sizeof(wire);
	int lin, lout, fin, fout, r, status, bad = 0;
	pid_t p1, p2;
	gnutls_datum_t k;
	double t0, t1;
	ssize_t n;

	memset(key, 0x42, sizeof(key));
	memset(app, 'x', sizeof(app));
	memset(nonce, 0, sizeof(nonce));
	k.data = key;
	k.size = gnutls_cipher_get_key_size(alg);
	if (gnutls_aead_cipher_init(&dec, alg, &k) < 0 ||
	    gnutls_aead_cipher_init(&enc, alg, &k) < 0 ||
	    gnutls_aead_cipher_encrypt(dec, nonce, sizeof(nonce), NULL, 0,
	    TAG, app, RECORD, wire, &len) < 0 || len != WIRE) {
		fprintf(stderr, "%s: cannot set up\n", name);
		return 1;
	}

	lin = listener(&sa_in);
	lout = listener(&sa_out);
	p1 = feeder(&sa_in, wire, records);
	p2 = drainer(&sa_out);
	fin = accept(lin, NULL, NULL);
	fout = accept(lout, NULL, NULL);
	if (fin == -1 || fout == -1) {
		perror("crypto-limit: accept");
		return 1;
	}

	t0 = rusage_now();
	while (done < records) {
		n = read(fin, in + have, CHUNK);
		if (n <= 0) {
			bad = 1;
			break;
		}
		have += (size_t)n;
		olen = 0;
		for (off = 0; have - off >= WIRE; off += WIRE) {
			size_t elen = WIRE;

			plen = sizeof(app);
			r = gnutls_aead_cipher_decrypt(dec, nonce,
			    sizeof(nonce), NULL, 0, TAG, in + off, WIRE, app,
			    &plen);
			if (r < 0)
				bad = 1;
			if (olen + WIRE > sizeof(out)) {
				if (write_all(fout, out, olen) == -1)
					bad = 1;
				olen = 0;
			}
			nonce[11] = (unsigned char)++done;
			r = gnutls_aead_cipher_encrypt(enc, nonce,
			    sizeof(nonce), NULL, 0, TAG, app, plen,
			    out + olen, &elen);
			nonce[11] = 0;
			if (r < 0)
				bad = 1;
			olen += elen;
		}
		if (olen > 0 && write_all(fout, out, olen) == -1)
			bad = 1;
		memmove(in, in + off, have - off);
		have -= off;
		if (bad)
			break;
	}
	t1 = rusage_now();
	close(fin);
	close(fout);
	close(lin);
	close(lout);
	waitpid(p1, &status, 0);
	waitpid(p2, &status, 0);
	gnutls_aead_cipher_deinit(dec);
	gnutls_aead_cipher_deinit(enc);
	if (bad) {
		fprintf(stderr, "%s+sockets: relay failed\n", name);
		return 1;
	}
	printf("%s+sockets %ld MB %.4f cpu_s %.4f cpu_s_per_100MB\n", name,
	    mb, t1 - t0, (t1 - t0) * 100.0 / mb);
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
	bad |= run_sockets(GNUTLS_CIPHER_AES_128_GCM, "AES-128-GCM", mb);
	bad |= run_sockets(GNUTLS_CIPHER_AES_256_GCM, "AES-256-GCM", mb);
	gnutls_global_deinit();
	return bad;
}
