#!/usr/bin/env bash
# Runs the test suite under sanitizers, as CI does.
#
#   tools/ci/sanitizers.sh [asan_ubsan|tsan|all]      (default: all)
#
# asan_ubsan  every test of //... (not the manual ones) built with
#             --config=asan_ubsan: AddressSanitizer with LeakSanitizer
#             (detect_leaks=1) and UndefinedBehaviorSanitizer, any report
#             fails the test. The benchmarks' smoke tests are left out: they
#             run each benchmark once for a microsecond, which exercises
#             nothing the package tests do not, and take minutes under ASan.
# tsan        the multi-threaded and fork tests (tagged "tsan" in their BUILD
#             files) built with --config=tsan.
#
# Prints each configuration's "N passed, N failed" and exits non-zero if any
# test failed, timed out or did not build. Timeouts are twice Bazel's defaults
# (sanitized code is 2-5 times slower); -k runs everything that builds.
#
# Environment:
#   BAZEL                Bazel launcher (default: tools/bazel of this repo)
#   BAZEL_STARTUP_FLAGS  e.g. "--output_base=/root/.cache/bazel-ci"
#   BAZEL_FLAGS          extra flags for every build (default: no color or
#                        curses). Not --config=ci: -Werror belongs to the
#                        plain build; gcc 12 at -O1 with sanitizers warns
#                        falsely (-Wmaybe-uninitialized inside <regex>).
set -uo pipefail

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${workspace}"

which="${1:-all}"
case "${which}" in
  asan_ubsan | tsan | all) ;;
  *)
    echo "usage: $0 [asan_ubsan|tsan|all]" >&2
    exit 2
    ;;
esac

bazel="${BAZEL:-${workspace}/tools/bazel}"
read -r -a startup <<<"${BAZEL_STARTUP_FLAGS:-}"
read -r -a extra <<<"${BAZEL_FLAGS:---color=no --curses=no}"
b() { "${bazel}" "${startup[@]}" "$@"; }

common=(-k --test_output=errors
  --test_summary=short "${extra[@]}")
log_dir="$(mktemp -d "${TMPDIR:-/tmp}/taskfork-sanitizers.XXXXXX")"
total_failed=0
summaries=()

# Runs `bazel test` with the given flags and targets; counts the summary.
run() {
  local name="$1"
  shift
  local log="${log_dir}/${name}.log"
  local start status
  start="$(date +%s)"
  echo "=== ${name}: bazel test $*"
  b test "${common[@]}" "$@" 2>&1 | tee "${log}"
  status="${PIPESTATUS[0]}"
  local passed failed
  passed="$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "${log}")"
  failed="$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "${log}")"
  # A build failure that stops before any test ran has no summary lines.
  if ((status != 0 && failed == 0)); then failed=1; fi
  local line="${name}: ${passed} passed, ${failed} failed ($(($(date +%s) - start)) s)"
  if ((failed > 0)); then
    line+=": $(grep -E '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "${log}" | awk '{print $1}' | tr '\n' ' ')"
  fi
  echo "${line}"
  summaries+=("${line}")
  total_failed=$((total_failed + failed))
}

if [[ "${which}" == asan_ubsan || "${which}" == all ]]; then
  mapfile -t targets < <(b query --noshow_progress \
    'tests(//...) except attr(tags, "\bmanual\b", tests(//...))
       except attr(name, "_benchmark_smoke_test$", tests(//...))' \
    2>/dev/null)
  if ((${#targets[@]} == 0)); then
    echo "sanitizers.sh: bazel query for the tests failed" >&2
    exit 2
  fi
  run asan_ubsan --config=asan_ubsan "${targets[@]}"
fi

if [[ "${which}" == tsan || "${which}" == all ]]; then
  run tsan --config=tsan --test_tag_filters=tsan --build_tests_only //...
fi

echo "--- sanitizers"
printf '%s\n' "${summaries[@]}"
rm -rf "${log_dir}"
((total_failed == 0))
