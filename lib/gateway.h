/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef MAILGATE_GATEWAY_H
#define MAILGATE_GATEWAY_H

#include "session.h"

/*
 * What every program's main does: read the options and the
 * configuration, take the client connection from stdin/stdout (or from
 * fd 3 under socket activation without StandardInput=socket), run the
 * protocol for role, log the summary line and return the exit status
 * (exitcode.h).
 */
int gateway_main(int argc, char **argv, enum session_role role);

#endif
