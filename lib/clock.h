/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_CLOCK_H
#define MAILGATE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC, for deadlines. */
static inline int64_t
clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline, at least 0, for poll(2). */
static inline int
clock_left(int64_t deadline)
{
	int64_t left = deadline - clock_ms();

	if (left < 0)
		return 0;
	if (left > 1 << 30)
		return 1 << 30;
	return (int)left;
}

#endif
