#!/usr/bin/env bash
# Faults of a run with --executor=slurm on a real single-node cluster:
# - a task killed on the node (kill -9), then an interrupt (SIGINT to the
#   runner): the report equals the local executor's for the same events
#   (Errored, Aborted, Blocked);
# - a worker killed (kill -9): its task is Errored naming the Slurm job, step
#   and node, the task not yet started is Errored (no worker left);
# - Ctrl-C twice with a task that ignores SIGTERM: killed at once on the
#   second, Aborted "killed by a second SIGTERM";
# - afterwards nothing is queued and no worker or task process is alive.
set -euo pipefail
# shellcheck source=runner/slurm_test_lib.sh
. "${RUNFILES_DIR:-$0.runfiles}/taskfork/runner/slurm_test_lib.sh"

mkfifo "${dir}/a" "${dir}/b" "${dir}/c"
# blocker ID FIFO: a command task that hands its pid to the test, then waits.
blocker() {
  cat <<SPEC
task {
  id: "$1"
  command { argv: "/bin/sh" argv: "-c" argv: "echo \$\$ >$2; exec sleep 300" }
}
SPEC
}
{
  echo 'name: "faults" max_parallel: 2 termination_grace: "2s"'
  blocker killed "${dir}/a"
  blocker interrupted "${dir}/b"
  blocker late "${dir}/c"
  blocker never "${dir}/never"
} >"${dir}/faults.textpb"

# run_faults ROOT ARGS...: kill -9 of the first task, then SIGINT once the
# third runs; prints the runner's exit code and the pids.
run_faults() {
  local root="$1"
  shift
  mkdir -p "${root}"
  "${runner}" --no_progress --runinfo_dir="${root}" "$@" "${dir}/faults.textpb" \
    >"${root}.out" 2>&1 &
  local runner_pid=$! a b c code=0
  read -r a <"${dir}/a"
  read -r b <"${dir}/b"
  kill -KILL "${a}"
  read -r c <"${dir}/c"  # started once the killed one ended
  kill -INT "${runner_pid}"
  wait "${runner_pid}" || code=$?
  echo "${code} ${a} ${b} ${c}"
}

# task_reason RUN ID: the result and reason of task ID in RUN's results.json.
task_reason() {
  python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["report"]["tasks"]:
    if t["id"] == sys.argv[2]: print(t["result"]["value"], t["result"].get("reason", ""))' \
    "$1/results.json" "$2"
}
read -r local_code _ _ _ < <(run_faults "${dir}/local")
read -r slurm_code a b c < <(run_faults "${dir}/slurm" --executor=slurm)
((slurm_code == local_code)) ||
  fail "exit codes: local ${local_code}, slurm ${slurm_code}: $(cat "${dir}/slurm.out")"
local_run="$(ls -d "${dir}"/local/faults.*)"
slurm_run="$(ls -d "${dir}"/slurm/faults.*)"
diff <(normalize_json "${local_run}/results.json") \
  <(normalize_json "${slurm_run}/results.json") >&2 ||
  fail "results.json differs between --executor=local and slurm"
for expected in "killed errored" "interrupted aborted" "late aborted" "never blocked"; do
  read -r id value <<<"${expected}"
  got="$(task_reason "${slurm_run}" "${id}")"
  [[ "${got}" == "${value}"* ]] || fail "task ${id}: want ${value}, got ${got}"
done
wait_gone 10 "${a}" "${b}" "${c}" "$(worker_pid "${slurm_run}" faults)" ||
  fail "a task or the worker outlived the interrupted run"
queue_empty 20 || fail "squeue after the interrupted run: $(squeue)"

# The worker killed mid-task.
{
  echo 'name: "lost" max_parallel: 1'
  blocker running "${dir}/a"
  blocker next "${dir}/never"
} >"${dir}/lost.textpb"
mkdir -p "${dir}/lost"
"${runner}" --no_progress --runinfo_dir="${dir}/lost" --executor=slurm \
  "${dir}/lost.textpb" >"${dir}/lost.out" 2>&1 &
runner_pid=$!
read -r a <"${dir}/a"
lost_run="$(ls -d "${dir}"/lost/lost.*)"
worker="$(worker_pid "${lost_run}" lost)"
kill -KILL "${worker}"
code=0
wait "${runner_pid}" || code=$?
((code == 1)) || fail "runner with a lost worker exited ${code}: $(cat "${dir}/lost.out")"
running="$(task_reason "${lost_run}" running)"
[[ "${running}" =~ ^errored\ .*slurm\ job\ [0-9]+\ step\ 0\ on\ node\ [^\ ]+\ lost:\ connection\ closed$ ]] ||
  fail "the lost worker's task: ${running}"
next="$(task_reason "${lost_run}" next)"
[[ "${next}" =~ ^errored\ .*no\ slurm\ worker\ of\ job\ taskfork-lost- ]] ||
  fail "the task after the lost worker: ${next}"
wait_gone 10 "${a}" || fail "task ${a} outlived its killed worker"
queue_empty 20 || fail "squeue after the lost worker: $(squeue)"

# Ctrl-C twice: the first asks (SIGTERM, which this task ignores; the grace
# is long), the second kills at once. A function task of the end-to-end
# tests' runner, so the task process itself ignores SIGTERM; the second
# signal is SIGTERM, which the kernel cannot merge with a pending SIGINT.
e2e_runner="${runfiles}/tests/e2e_runner"
cat >"${dir}/twice.textpb" <<SPEC
name: "twice" termination_grace: "300s"
task {
  id: "stubborn"
  function { name: "e2e_announce" args: "${dir}/a" args: "ignore_term" }
}
SPEC
mkdir -p "${dir}/twice"
"${e2e_runner}" --no_progress --runinfo_dir="${dir}/twice" --executor=slurm \
  "${dir}/twice.textpb" >"${dir}/twice.out" 2>&1 &
runner_pid=$!
read -r a <"${dir}/a"
twice_run="$(ls -d "${dir}"/twice/twice.*)"
worker="$(worker_pid "${twice_run}" twice)"
kill -INT "${runner_pid}"
kill -TERM "${runner_pid}"
code=0
wait "${runner_pid}" || code=$?
((code == 1)) || fail "runner after Ctrl-C twice exited ${code}: $(cat "${dir}/twice.out")"
stubborn="$(task_reason "${twice_run}" stubborn)"
[[ "${stubborn}" == "aborted killed by a second SIGTERM" ]] ||
  fail "the task after Ctrl-C twice: ${stubborn}"
wait_gone 10 "${a}" "${worker}" || fail "task ${a} or worker ${worker} outlived Ctrl-C twice"
queue_empty 20 || fail "squeue after Ctrl-C twice: $(squeue)"

"${cluster}" down "${dir}" || fail "cluster down found leftovers"
echo PASS
