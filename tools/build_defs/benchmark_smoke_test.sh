#!/usr/bin/env bash
# Runs a benchmark binary ($1) with every benchmark for a minimal time; fails
# only if the binary fails (crash, error, SkipWithError), never on timing.
set -euo pipefail
binary="$1"
shift
"${binary}" --benchmark_min_time=0.0001 --benchmark_repetitions=1 "$@"
