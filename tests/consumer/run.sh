#!/usr/bin/env bash
# Builds and tests tests/consumer, a separate Bazel workspace that uses
# taskfork as another repository would (local_repository + taskfork_dependencies),
# and checks that depending on a few taskfork targets builds only those and
# what they need (not the runner, tasklog or the benchmarks).
#
#   tests/consumer/run.sh        # from anywhere; exits non-zero on failure
#
# It uses its own Bazel output base (TASKFORK_CONSUMER_OUTPUT_BASE, default
# ~/.cache/bazel-taskfork-consumer) so it never waits for the main workspace's
# server, and shuts that server down at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

output_base="${TASKFORK_CONSUMER_OUTPUT_BASE:-${HOME}/.cache/bazel-taskfork-consumer}"
bazel() { ../../tools/bazel --output_base="${output_base}" "$@"; }
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT

echo "== tests/consumer: taskfork packages the consumer's targets depend on"
packages="$(bazel query --noshow_progress 'deps(//...)' --output=package |
  grep '^@taskfork//' || true)"
echo "${packages}" | sed 's/^/  /'
# Only what the BUILD file names (and its dependencies) may appear.
unwanted="$(echo "${packages}" |
  grep -E '^@taskfork//(runner|tasklog|tests|tools/bench)(/|$)' || true)"
if [[ -n "${unwanted}" ]]; then
  echo "tests/consumer: depending on serialize, fork:pcall, ipc:queue/typed and" \
    "reporter:client/server pulls in: ${unwanted}" >&2
  exit 1
fi

echo "== tests/consumer: bazel test //..."
bazel test //...

echo "== tests/consumer: bazel run //:demo"
bazel run --noshow_progress //:demo
echo "tests/consumer: passed"
