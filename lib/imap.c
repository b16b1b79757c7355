/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "exitcode.h"
#include "imap.h"

/* XXX: placeholder until the IMAP dialogue is written. */
int
imap_run(struct session *s)
{
	return session_fail(s, EXIT_TEMP, "IMAP not implemented");
}
