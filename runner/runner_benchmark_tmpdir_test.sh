#!/usr/bin/env bash
# runner_benchmark puts its runs under $TMPDIR: one it cannot create a
# directory in is refused before any benchmark runs (exit 1, the path and
# the errno named), and a usable one is used and cleaned up.
set -euo pipefail
binary="$1"

missing="${TEST_TMPDIR}/no/such/dir"
if TMPDIR="${missing}" "${binary}" --tasks=1 >"${TEST_TMPDIR}/out" 2>"${TEST_TMPDIR}/err"; then
  echo "FAIL: runner_benchmark ran with TMPDIR=${missing}" >&2
  exit 1
fi
if ! grep -q "mkdtemp ${missing}/runner_benchmark.XXXXXX: No such file or directory" \
    "${TEST_TMPDIR}/err"; then
  echo "FAIL: the error does not name the path and errno:" >&2
  cat "${TEST_TMPDIR}/err" >&2
  exit 1
fi

work="${TEST_TMPDIR}/work"
mkdir -p "${work}"
TMPDIR="${work}" "${binary}" --tasks=2 --benchmark_filter=Runtime \
    --benchmark_min_time=0.0001 >"${TEST_TMPDIR}/out" 2>"${TEST_TMPDIR}/err"
if [[ -n "$(ls -A "${work}")" ]]; then
  echo "FAIL: runner_benchmark left files in TMPDIR:" >&2
  ls -la "${work}" >&2
  exit 1
fi
# The summary line always names taskfork; a run that measured it has a
# non-zero figure there.
if ! grep -Eq "taskfork [1-9][0-9]*\.[0-9] us" "${TEST_TMPDIR}/out"; then
  echo "FAIL: no per-task figure printed:" >&2
  cat "${TEST_TMPDIR}/out" >&2
  exit 1
fi
echo PASS
