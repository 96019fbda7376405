#!/usr/bin/env bash
# CI's reliability stage: fuzzing and sanitizers.
#
#   tools/ci/reliability.sh [FUZZ_SECONDS_PER_TARGET]     (default 90)
#
# 1. tools/ci/fuzz.sh: every libFuzzer target for FUZZ_SECONDS each, from a
#    copy of its committed corpus (ASan + LeakSanitizer + UBSan).
# 2. tools/ci/sanitizers.sh: the whole suite under ASan+UBSan (LeakSanitizer
#    on), the multi-threaded and fork tests under TSan.
# The soak test (tests/soak, 300 tasks) is part of the normal `bazel test
# //...`; its 5000-task version is manual (see tests/soak/README.md).
#
# Prints each stage's "N passed, N failed" and its time, and exits non-zero if
# any stage failed. Runs every stage even after a failure. Environment: as
# fuzz.sh and sanitizers.sh (BAZEL, BAZEL_STARTUP_FLAGS, BAZEL_FLAGS).
set -uo pipefail

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fuzz_seconds="${1:-90}"
results=()
failed=0

stage() {
  local name="$1"
  shift
  local start status log line
  start="$(date +%s)"
  log="$(mktemp "${TMPDIR:-/tmp}/taskfork-reliability.XXXXXX")"
  echo "##### ${name}: $*"
  "$@" 2>&1 | tee "${log}"
  status="${PIPESTATUS[0]}"
  # The sub-results the stage printed ("fuzz: 3 passed, 0 failed", ...).
  while IFS= read -r line; do
    results+=("  ${line}")
  done < <(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' "${log}")
  rm -f "${log}"
  results+=("${name}: $( ((status == 0)) && echo OK || echo "FAILED (exit ${status})") in $(($(date +%s) - start)) s")
  ((status == 0)) || failed=$((failed + 1))
}

total_start="$(date +%s)"
stage fuzz "${workspace}/tools/ci/fuzz.sh" "${fuzz_seconds}"
stage sanitizers "${workspace}/tools/ci/sanitizers.sh" all

echo "##### reliability: $(($(date +%s) - total_start)) s"
printf '%s\n' "${results[@]}"
if ((failed > 0)); then
  echo "reliability: ${failed} stage(s) failed"
  exit 1
fi
echo "reliability: all stages passed"
