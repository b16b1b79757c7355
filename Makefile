# SPDX-License-Identifier: GPL-3.0-or-later
# mailgate: mail TLS gateway

VERSION = 0.1

prefix ?= /usr
sbindir ?= $(prefix)/sbin
mandir ?= $(prefix)/share/man
sysconfdir ?= /etc
unitdir ?= /lib/systemd/system
docdir ?= $(prefix)/share/doc/mailgate

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARN = -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 \
	-Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags gnutls)
DEPS_LIBS := $(shell $(PKG_CONFIG) --libs gnutls)
ALL_CPPFLAGS = -Ilib -DMAILGATE_VERSION='"$(VERSION)"' $(CPPFLAGS)
ALL_CFLAGS = $(WARN) $(DEPS_CFLAGS) $(CFLAGS)

PROGS = mailgate-smtp-starttls mailgate-smtps mailgate-imap-starttls \
	mailgate-imaps
LIB_SRCS = lib/cfg.c lib/gateway.c lib/imap.c lib/imap_parse.c lib/io.c lib/log.c \
	lib/net.c lib/relay.c lib/resume.c lib/session.c lib/smtp.c lib/tls.c
LIB_OBJS = $(LIB_SRCS:.c=.o)
UNIT_TESTS = t/cfg-unit t/imap-unit t/smtp-unit
MAN8 = $(PROGS:%=man/%.8)
MAN5 = man/mailgate.conf.5

all: $(PROGS)

lib/%.o: lib/%.c lib/*.h
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

cmd/%.o: cmd/%.c lib/*.h
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

libmailgate.a: $(LIB_OBJS)
	$(AR) rcs $@ $(LIB_OBJS)

$(PROGS): %: cmd/%.o libmailgate.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< libmailgate.a $(DEPS_LIBS)

t/%-unit: t/%-unit.c libmailgate.a
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< \
		libmailgate.a $(DEPS_LIBS)

deps:
	sh t/install-deps.sh

check: deps
	$(MAKE) all $(UNIT_TESTS)
	prove --exec '' $(UNIT_TESTS)
	prove t/

# The suite again under AddressSanitizer (leaks too) and UBSan, built
# in a copy of the tree so that the objects here are left alone.  A
# report ends the program with an error status, but a gateway started
# by systemd-socket-activate gets neither our environment nor a parent
# that looks at its status, and a leak shows only at exit, after the
# summary line: so UBSan is made fatal when compiling, and the logs
# the tests keep (MG_KEEP) are searched for reports afterwards.
check-sanitize:
	rm -rf build-san/tree
	mkdir -p build-san/tree
	git ls-files -co --exclude-standard -z | tar --null -T - \
		--ignore-failed-read -cf - | tar -C build-san/tree -xf -
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 MG_KEEP=1; \
	cd build-san/tree && $(MAKE) check CC=clang CFLAGS='-O1 -g \
		-fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer'; \
	s=$$?; prove --exec '' $(UNIT_TESTS) || s=1; \
	if grep -rlIE '==[0-9]+==ERROR: |runtime error: ' t/tmp; then \
		echo 'sanitizer reports in the logs above'; s=1; fi; \
	exit $$s

# The shipped mailgate-smtps.socket under systemd 252 as PID 1 in
# private namespaces, hit by a burst of connections.  Needs root.
check-systemd: all
	sh t/systemd-burst.sh

# libFuzzer targets from fuzz/, each run FUZZ_SECONDS (default 60).
fuzz:
	LIB_SRCS='$(LIB_SRCS)' DEPS_CFLAGS='$(DEPS_CFLAGS)' \
		DEPS_LIBS='$(DEPS_LIBS)' sh fuzz/run.sh '$(FUZZ_SECONDS)' \
		$(FUZZ_TARGETS)

demo: deps
	$(MAKE) all
	/usr/bin/python3 t/demo.py

bench: deps
	sh bench/install-deps.sh
	$(MAKE) all
	$(CC) $(WARN) $(DEPS_CFLAGS) $(CFLAGS) -o bench/crypto-limit \
		bench/crypto-limit.c $(DEPS_LIBS)
	$(CC) $(WARN) $(DEPS_CFLAGS) $(CFLAGS) -o bench/floor bench/floor.c \
		$(DEPS_LIBS)
	/usr/bin/python3 bench/bench.py

install: all
	install -d $(DESTDIR)$(sbindir) $(DESTDIR)$(mandir)/man8 \
		$(DESTDIR)$(mandir)/man5 $(DESTDIR)$(unitdir) \
		$(DESTDIR)$(sysconfdir)/mailgate $(DESTDIR)$(docdir)/xinetd.d
	install -m 755 $(PROGS) $(DESTDIR)$(sbindir)
	install -m 644 $(MAN8) $(DESTDIR)$(mandir)/man8
	install -m 644 $(MAN5) $(DESTDIR)$(mandir)/man5
	install -m 644 units/*.socket units/*.service $(DESTDIR)$(unitdir)
	install -m 644 units/inetd.conf $(DESTDIR)$(docdir)
	install -m 644 units/xinetd.d/* $(DESTDIR)$(docdir)/xinetd.d
	install -m 644 mailgate.conf.example $(DESTDIR)$(docdir)
	test -e $(DESTDIR)$(sysconfdir)/mailgate/mailgate.conf || \
		install -m 640 mailgate.conf.example \
		$(DESTDIR)$(sysconfdir)/mailgate/mailgate.conf

clean:
	rm -f $(PROGS) cmd/*.o lib/*.o libmailgate.a $(UNIT_TESTS) \
		bench/crypto-limit bench/floor
	rm -rf t/tmp

.PHONY: all bench check deps demo install clean check-sanitize fuzz \
	check-systemd
