#!/usr/bin/env bash
# Fuzzes every libFuzzer target of the repository for a bounded time.
#
#   tools/ci/fuzz.sh [SECONDS_PER_TARGET] [//pkg:target ...]
#
# SECONDS_PER_TARGET defaults to 60. Without targets, every test tagged "fuzz"
# (what taskfork_cc_fuzz_test makes) is fuzzed, so new fuzzers are included
# without editing this script. Each target is built with --config=fuzz
# (clang 14, libFuzzer, ASan + LeakSanitizer + UBSan) and started from a COPY
# of its committed corpus (the repository is never modified).
#
# Exit status: 0 if no target found anything; 1 if any target crashed, leaked,
# hit UB, timed out on an input (-timeout), ran out of memory or did not run;
# 2 on a usage or build error. For each finding it prints the reproducer's
# path, the input as hex, the command that replays it, and the fuzzer's report.
#
# Environment:
#   BAZEL                 Bazel launcher (default: tools/bazel of this repo)
#   BAZEL_STARTUP_FLAGS   e.g. "--output_base=/root/.cache/bazel-ci"
#   BAZEL_FLAGS           extra build flags (e.g. "--config=ci")
#   FUZZ_OUT              where runs keep their corpus copy, logs and
#                         reproducers (default: a fresh mktemp -d; removed when
#                         nothing was found, kept otherwise)
#   FUZZ_INPUT_TIMEOUT    libFuzzer -timeout: seconds one input may take (25)
#   FUZZ_RSS_LIMIT_MB     libFuzzer -rss_limit_mb (2048)
#   FUZZ_SEED             libFuzzer -seed (default: a random one). CI sets
#                         it, so a run explores the same inputs each time on
#                         the same code and a finding replays with the same
#                         command; the seed is printed either way.
set -euo pipefail

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${workspace}"

seconds="${1:-60}"
if ! [[ "${seconds}" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET] [//pkg:target ...]" >&2
  exit 2
fi
shift || true

bazel="${BAZEL:-${workspace}/tools/bazel}"
read -r -a startup <<<"${BAZEL_STARTUP_FLAGS:-}"
read -r -a extra <<<"${BAZEL_FLAGS:-}"
input_timeout="${FUZZ_INPUT_TIMEOUT:-25}"
rss_limit="${FUZZ_RSS_LIMIT_MB:-2048}"
seed="${FUZZ_SEED:-$((RANDOM * 32768 + RANDOM + 1))}"
if ! [[ "${seed}" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: FUZZ_SEED must be a positive integer, not '${seed}'" >&2
  exit 2
fi

b() { "${bazel}" "${startup[@]}" "$@"; }

if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(b query --noshow_progress \
    'attr(tags, "\bfuzz\b", tests(//...))' 2>/dev/null | sort)
fi
if ((${#targets[@]} == 0)); then
  echo "fuzz.sh: no fuzz targets found (bazel query failed?)" >&2
  exit 2
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each, seed ${seed}: ${targets[*]}"

if ! b build --config=fuzz "${extra[@]}" "${targets[@]}"; then
  echo "fuzz.sh: building the fuzz targets with --config=fuzz failed" >&2
  exit 2
fi
bin="$(b info --config=fuzz "${extra[@]}" bazel-bin 2>/dev/null)"

if [[ -n "${FUZZ_OUT:-}" ]]; then
  out="${FUZZ_OUT}"
  mkdir -p "${out}"
else
  out="$(mktemp -d "${TMPDIR:-/tmp}/taskfork-fuzz.XXXXXX")"
fi

symbolizer="$(command -v llvm-symbolizer || true)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1${symbolizer:+:external_symbolizer_path=${symbolizer}}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# The corpus directory fuzz.bzl recorded in the test's environment.
corpus_of() {
  b query --noshow_progress --output=build "$1" 2>/dev/null |
    sed -n 's/.*"TASKFORK_FUZZ_CORPUS": "\([^"]*\)".*/\1/p' | head -n 1
}

passed=0
failed=0
failures=()
for target in "${targets[@]}"; do
  package="${target#//}"
  package="${package%%:*}"
  name="${target##*:}"
  binary="${bin}/${package}/${name}"
  corpus="$(corpus_of "${target}")"
  work="${out}/${package//\//_}.${name}"
  rm -rf "${work}"
  mkdir -p "${work}/corpus" "${work}/artifacts"
  if [[ -z "${corpus}" || ! -d "${corpus}" ]]; then
    echo "FAIL ${target}: no corpus directory (TASKFORK_FUZZ_CORPUS='${corpus}')"
    failed=$((failed + 1))
    failures+=("${target}")
    continue
  fi
  cp -r "${corpus}/." "${work}/corpus/"
  seeds="$(find "${work}/corpus" -type f | wc -l)"
  echo "--- ${target}: ${seeds} seeds from ${corpus}, ${seconds} s"
  start="$(date +%s)"
  status=0
  # The outer timeout only guards against a fuzzer that stops responding.
  timeout --kill-after=30 "$((seconds + input_timeout + 120))" \
    "${binary}" -max_total_time="${seconds}" -seed="${seed}" -timeout="${input_timeout}" \
    -rss_limit_mb="${rss_limit}" -print_final_stats=1 \
    -artifact_prefix="${work}/artifacts/" "${work}/corpus" \
    >"${work}/log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${work}/log" | tail -n 1)"
  mapfile -t findings < <(find "${work}/artifacts" -type f | sort)
  if ((status == 0 && ${#findings[@]} == 0)); then
    echo "PASS ${target}: ${runs:-?} executions in ${elapsed} s," \
      "corpus $(find "${work}/corpus" -type f | wc -l) files"
    passed=$((passed + 1))
    continue
  fi
  failed=$((failed + 1))
  failures+=("${target}")
  echo "FAIL ${target}: exit status ${status} after ${elapsed} s," \
    "${runs:-?} executions; log ${work}/log"
  for finding in "${findings[@]}"; do
    echo "  reproducer: ${finding} ($(stat -c %s "${finding}") bytes)"
    echo "  input as hex:"
    od -An -tx1 -v "${finding}" | head -n 64 | sed 's/^/   /'
    echo "  replay: tools/bazel run --config=fuzz ${target} -- ${finding}"
    echo "     or:  tools/bazel test ${target} after copying it into ${corpus}/"
  done
  echo "  fuzzer report (last 60 lines):"
  tail -n 60 "${work}/log" | sed 's/^/   | /'
done

echo "fuzz: ${passed} passed, ${failed} failed${failures[*]:+ (${failures[*]})}"
if ((failed > 0)); then
  echo "fuzz: logs, corpus copies and reproducers kept in ${out}"
  exit 1
fi
[[ -n "${FUZZ_OUT:-}" ]] || rm -rf "${out}"
exit 0
