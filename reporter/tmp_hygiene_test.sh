#!/usr/bin/env bash
# Runs reporter test binaries (the arguments) as `bazel test` would and
# checks that they leave nothing behind: not in the private TMPDIR they are
# given (where MakeTempDir puts its directories), and no new
# /tmp/reporter_test_* entry (MakeTempDir's name, which only these tests
# use). /tmp/taskfork-reporter-* (a server's short socket directory) is not
# checked here: every runner test running at the same time makes and
# removes such directories, so a new one cannot be told from theirs;
# server_test checks that the server removes its own.
set -euo pipefail

private="$(mktemp -d "/tmp/reporter_hygiene.XXXXXX")"
trap 'rm -rf "${private}"' EXIT
# server_test's OtherUidIsRefused connects as another uid through it.
chmod 0755 "${private}"

ours() {
  find /tmp -maxdepth 1 -name 'reporter_test_*' -print 2>/dev/null | sort
}

before="$(ours)"
for binary in "$@"; do
  if ! TMPDIR="${private}" "${binary}" >"${TEST_TMPDIR}/out" 2>&1; then
    echo "FAIL: ${binary} failed:" >&2
    cat "${TEST_TMPDIR}/out" >&2
    exit 1
  fi
  left="$(find "${private}" -mindepth 1 -maxdepth 1 -print)"
  if [[ -n "${left}" ]]; then
    echo "FAIL: ${binary} left in its TMPDIR:" >&2
    echo "${left}" >&2
    exit 1
  fi
done
after="$(ours)"
new="$(comm -13 <(echo "${before}") <(echo "${after}"))"
if [[ -n "${new}" ]]; then
  echo "FAIL: new entries in /tmp after the reporter tests:" >&2
  echo "${new}" >&2
  exit 1
fi
echo "PASS: $# reporter test binaries left nothing in TMPDIR or /tmp"
