#!/usr/bin/env bash
# Checks that //ipc:queue and //ipc:pipe do not depend on //serialize.
#   $1: genquery output of deps(//ipc:queue) union deps(//ipc:pipe)
#   $2: genquery output of deps(//ipc:typed), which must (the control: the
#       pattern below does match a dependency on //serialize)
set -euo pipefail
queue_pipe_deps="$1"
typed_deps="$2"
serialize_label='^//serialize(:|$)'

for label in //ipc:queue //ipc:pipe; do
  if ! grep -qx -- "${label}" "${queue_pipe_deps}"; then
    echo "queue_pipe_deps_test: ${queue_pipe_deps} does not list ${label}" >&2
    exit 1
  fi
done
if ! grep -qE -- "${serialize_label}" "${typed_deps}"; then
  echo "queue_pipe_deps_test: control failed: ${typed_deps} (deps of" \
    "//ipc:typed) lists no //serialize target" >&2
  exit 1
fi
if grep -E -- "${serialize_label}" "${queue_pipe_deps}"; then
  echo "queue_pipe_deps_test: //ipc:queue or //ipc:pipe depends on the" \
    "//serialize target(s) above; typed values belong in //ipc:typed" >&2
  exit 1
fi
echo "queue_pipe_deps_test: //ipc:queue and //ipc:pipe do not depend on //serialize"
