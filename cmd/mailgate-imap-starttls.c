/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "gateway.h"

int
main(int argc, char **argv)
{
	return gateway_main(argc, argv, ROLE_IMAP_STARTTLS);
}
