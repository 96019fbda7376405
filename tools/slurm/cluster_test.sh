#!/usr/bin/env bash
# tools/slurm/cluster.sh against the real Slurm daemons: up, steps' exit codes,
# a step's escaped descendants ended with the step, down with a running batch
# job leaves no job process and no daemon, and the usage errors.
set -euo pipefail

cluster="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster.sh"
dir="$(mktemp -d /tmp/taskfork-slurm-test.XXXXXX)"
cleanup() {
  "${cluster}" down "${dir}" >/dev/null 2>&1 || true
  rm -rf "${dir}"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# wait_gone SECONDS PID: scancel and step ends kill asynchronously.
wait_gone() {
  local deadline=$((SECONDS + $1))
  while [[ -e "/proc/$2" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$2/status" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

"${cluster}" up "${dir}"
# shellcheck disable=SC1091
. "${dir}/env.sh"
"${cluster}" status "${dir}" || fail "status after up"

if "${cluster}" up "${dir}" 2>"${dir}/err"; then fail "second up succeeded"; fi
grep -q "already holds a cluster" "${dir}/err" || fail "second up: $(cat "${dir}/err")"

srun true || fail "srun true"
set +e
srun sh -c 'exit 3' 2>/dev/null
code=$?
srun sh -c 'kill -KILL $$' 2>/dev/null
killed=$?
set -e
((code == 3)) || fail "srun of 'exit 3' returned ${code}"
((killed == 137)) || fail "srun of a SIGKILLed step returned ${killed}"

# A descendant that left the step's session is ended with the step.
orphan="$(srun sh -c 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!')"
[[ "${orphan}" =~ ^[0-9]+$ ]] || fail "no pid from the step: ${orphan}"
wait_gone 20 "${orphan}" || fail "pid ${orphan} (setsid sleep of a finished step) still runs"

# down with a running batch job: nothing of the job, no daemon left.
job="$(sbatch --parsable --output="${dir}/job-%j.out" --wrap 'setsid sleep 300 & sleep 300')"
[[ "${job}" =~ ^[0-9]+$ ]] || fail "sbatch printed ${job}"
pids=()
for pidfile in "${dir}"/run/slurmctld.pid "${dir}"/run/slurmd.pid "${dir}"/munge/run/munged.pid; do
  pids+=("$(cat "${pidfile}")")
done
"${cluster}" down "${dir}" || fail "down"
for pid in "${pids[@]}"; do
  wait_gone 5 "${pid}" || fail "daemon pid ${pid} still runs after down"
done
for environ in /proc/[0-9]*/environ; do
  env="$({ tr '\0' '\n' <"${environ}"; } 2>/dev/null)" || continue
  if grep -qxF "SLURM_JOB_ID=${job}" <<<"${env}"; then
    pid="${environ#/proc/}"
    fail "process ${pid%/environ} of job ${job} left after down: $(tr '\0' ' ' <"/proc/${pid%/environ}/cmdline" 2>/dev/null)"
  fi
done
if "${cluster}" status "${dir}" 2>/dev/null; then fail "status after down succeeded"; fi

# Usage errors name what to fix.
long="/tmp/$(printf 'x%.0s' {1..70})"
if "${cluster}" up "${long}" 2>"${dir}/err"; then fail "up of a 75-character dir succeeded"; fi
grep -q "characters long" "${dir}/err" || fail "long dir: $(cat "${dir}/err")"
rmdir "${long}" 2>/dev/null || true
if "${cluster}" down "${dir}/none" 2>"${dir}/err"; then fail "down of a missing dir succeeded"; fi
grep -q "no directory" "${dir}/err" || fail "missing dir: $(cat "${dir}/err")"
set +e
"${cluster}" sideways "${dir}" 2>/dev/null
code=$?
set -e
((code == 2)) || fail "unknown command exited ${code}, not 2"
echo PASS
