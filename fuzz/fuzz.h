/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_FUZZ_H
#define MAILGATE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Shared by the libFuzzer targets in this directory.  A broken
 * invariant aborts, which libFuzzer reports as a crash and saves the
 * input that caused it; the message says which check failed, since the
 * stack alone does not.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

#endif
