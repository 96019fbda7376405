#!/usr/bin/env bash
# Runs the shm_check CLI ($1) against /dev/shm, a missing directory and a
# directory with the wrong mode; checks exit codes and messages.
set -euo pipefail
bin="$1"
tmp="${TEST_TMPDIR:-/tmp}/shm_check_test.$$"
mkdir -p "$tmp"

out="$("$bin")" || { echo "FAIL: /dev/shm should pass"; exit 1; }
grep -q "mode: 1777 (drwxrwxrwt)" <<<"$out" || { echo "FAIL: no mode line: $out"; exit 1; }
grep -q "shm_check: OK" <<<"$out" || { echo "FAIL: no OK line"; exit 1; }

set +e
err="$("$bin" --path="$tmp/missing" 2>&1 >/dev/null)"; rc=$?
set -e
[[ $rc == 1 ]] || { echo "FAIL: missing dir exit $rc"; exit 1; }
grep -q "NOT_FOUND.*does not exist.*mount -t tmpfs" <<<"$err" || { echo "FAIL: $err"; exit 1; }

mkdir -p "$tmp/private" && chmod 0700 "$tmp/private"
set +e
err="$("$bin" --quiet --path="$tmp/private" 2>&1)"; rc=$?
set -e
[[ $rc == 1 ]] || { echo "FAIL: mode 0700 exit $rc"; exit 1; }
grep -q "PERMISSION_DENIED.*mode 0700.*chmod 1777 $tmp/private" <<<"$err" || { echo "FAIL: $err"; exit 1; }

set +e
"$bin" --min_free_mb=999999999 >/dev/null 2>&1; rc=$?
"$bin" extra >/dev/null 2>&1; rc2=$?
set -e
[[ $rc == 1 ]] || { echo "FAIL: min_free exit $rc"; exit 1; }
[[ $rc2 == 2 ]] || { echo "FAIL: extra argument exit $rc2"; exit 1; }
echo PASS
