/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_EXITCODE_H
#define MAILGATE_EXITCODE_H

/* Exit statuses, documented in mailgate(8). */
#define EXIT_OK		0	/* the session ended normally */
#define EXIT_CLIENT	1	/* the client failed: TLS, timeout, reset */
#define EXIT_CONFIG	100	/* usage or configuration error */
#define EXIT_TEMP	111	/* backend or resource failure */

#endif
