#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Build the libFuzzer targets in fuzz/ and run each for a while.
#
# usage: sh fuzz/run.sh [seconds] [target ...]
#
# Run from the top of the tree (make fuzz does).  Objects, binaries,
# the corpora libFuzzer grows and any crashing inputs go to
# build-san/fuzz/; the seeds in fuzz/corpus/<target>/ and the inputs
# that found bugs, in fuzz/crashes/<target>/, are only read.
# Exits 1 if any target crashed, leaked, hung or broke an invariant.
set -eu

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-$(cd fuzz && ls ./*.c | sed 's|^\./||; s|\.c$||')}
cc=${FUZZ_CC:-clang}
out=build-san/fuzz
lib_srcs=${LIB_SRCS:-$(ls lib/*.c)}
deps_cflags=${DEPS_CFLAGS-$(pkg-config --cflags gnutls)}
deps_libs=${DEPS_LIBS-$(pkg-config --libs gnutls)}

# The same warnings as the main build, so the harnesses stay as clean
# as the code they drive.  UBSan must not recover, or libFuzzer never
# hears of undefined behaviour.
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
flags="-std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wformat=2
-Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
-g -O1 -fno-omit-frame-pointer -Ilib -DMAILGATE_VERSION=\"fuzz\"
${FUZZ_CFLAGS:-}"

mkdir -p "$out/obj"
rm -f "$out/libmailgate-fuzz.a"
for src in $lib_srcs; do
	obj=$out/obj/$(basename "$src" .c).o
	# shellcheck disable=SC2086
	$cc $flags $deps_cflags $san -fsanitize=fuzzer-no-link \
		-c -o "$obj" "$src"
	ar rcs "$out/libmailgate-fuzz.a" "$obj"
done
for t in $targets; do
	# shellcheck disable=SC2086
	$cc $flags $deps_cflags $san -fsanitize=fuzzer -o "$out/$t" \
		"fuzz/$t.c" "$out/libmailgate-fuzz.a" $deps_libs
done

failed=0
for t in $targets; do
	mkdir -p "$out/corpus/$t"
	log=$out/$t.log
	start=$(date +%s)
	# New inputs go to the first directory, so the seeds stay put.
	# Inputs that once found a bug run first, so a bug that comes
	# back fails at once.
	crashes=fuzz/crashes/$t
	[ -d "$crashes" ] || crashes=
	if "$out/$t" -max_total_time="$secs" -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$out/$t-" \
		"$out/corpus/$t" "fuzz/corpus/$t" ${crashes:+"$crashes"} \
		>"$log" 2>&1; then
		verdict="no crash"
	else
		verdict="CRASH: $(sed -n 's/.*Test unit written to //p' \
			"$log" | tail -n 1)"
		failed=1
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	echo "fuzz $t: $(($(date +%s) - start)) s, ${runs:-?} executions," \
		"$verdict (log: $log)"
	case $verdict in
	CRASH*)	grep -m 3 -E 'invariant broken|ERROR:|runtime error' \
			"$log" | sed 's/^/    /' ;;
	esac
done
exit $failed
