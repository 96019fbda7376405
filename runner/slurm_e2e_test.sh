#!/usr/bin/env bash
# The runner with --executor=slurm on a real single-node cluster
# (tools/slurm/cluster.sh, started here):
# - the demo job (functions, pcall, queue, a GoogleTest binary, a command, a
#   failure, a timeout) gives the same results.json and xunit.xml as with the
#   local executor (ids, results, reasons, sections; not times or pids), and
#   the same exit code;
# - afterwards squeue lists nothing and no worker or task process is alive;
# - a runner killed with SIGKILL mid-task leaves no job and no process.
set -euo pipefail

runfiles="${RUNFILES_DIR:-$0.runfiles}/taskfork"
runner="${runfiles}/runner/runner"
cluster="${runfiles}/tools/slurm/cluster.sh"
demo="${runfiles}/runner/examples/demo.textpb"

# Unix sockets live under the cluster directory: it must be short.
dir="$(mktemp -d /tmp/taskfork-slurm-e2e.XXXXXX)"
cleanup() {
  "${cluster}" down "${dir}" >/dev/null 2>&1 || true
  rm -rf "${dir}"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# wait_gone SECONDS PID...: the processes (not ours) are gone or zombies.
wait_gone() {
  local deadline=$((SECONDS + $1))
  shift
  local pid
  for pid in "$@"; do
    while [[ -e "/proc/${pid}" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/${pid}/status" 2>/dev/null; do
      ((SECONDS < deadline)) || return 1
      sleep 0.05
    done
  done
}

# queue_empty SECONDS: squeue lists no job (scancel is asynchronous).
queue_empty() {
  local deadline=$((SECONDS + $1))
  while [[ -n "$(squeue -h -o %i)" ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# The report without what differs between two runs of one job.
normalize_json() {
  python3 - "$1" <<'EOF'
import json, re, sys
DROP = {"starttime", "stoptime", "runtime", "logfile", "pids", "pid", "logs",
        "host", "id", "time", "timestamp"}
def norm(v):
    if isinstance(v, dict):
        return {k: norm(x) for k, x in sorted(v.items()) if k not in DROP}
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, str):
        return re.sub(r"pid \d+", "pid N", v)
    return v
report = json.load(open(sys.argv[1]))["report"]
tasks = [dict(norm(t), task_id=t["id"]) for t in report["tasks"]]
print(json.dumps({"result": norm(report["result"]),
                  "summary": norm(report["summary"]),
                  "task_summary": norm(report["task_summary"]),
                  "tasks": tasks}, indent=1, sort_keys=True))
EOF
}
normalize_xml() {
  sed -E -e 's/ (time|timestamp|hostname)="[^"]*"//g' -e 's/pid [0-9]+/pid N/g' \
    -e 's#/[^ <"]*/(TaskLog[^ <"]*)#\1#g' "$1"
}

"${cluster}" up "${dir}" >/dev/null
# shellcheck disable=SC1091
. "${dir}/env.sh"

run_demo() {  # run_demo ROOT ARGS...: prints the exit code
  local root="$1"
  shift
  set +e
  "${runner}" --no_progress --runinfo_dir="${root}" "$@" "${demo}" \
    >"${root}.out" 2>&1
  echo $?
  set -e
}
mkdir -p "${dir}/local" "${dir}/slurm"
local_code="$(run_demo "${dir}/local")"
slurm_code="$(run_demo "${dir}/slurm" --executor=slurm)"
((local_code == 1)) || fail "local demo exited ${local_code}: $(cat "${dir}/local.out")"
((slurm_code == local_code)) || fail "slurm demo exited ${slurm_code}: $(cat "${dir}/slurm.out")"
local_run="$(ls -d "${dir}"/local/demo.*)"
slurm_run="$(ls -d "${dir}"/slurm/demo.*)"
grep -q "slurm job [0-9]* step 0 on node .* connected" "${slurm_run}/JobLog.demo" ||
  fail "no worker connected: $(cat "${slurm_run}/JobLog.demo")"
diff <(normalize_json "${local_run}/results.json") \
  <(normalize_json "${slurm_run}/results.json") >&2 ||
  fail "results.json differs between --executor=local and slurm"
diff <(normalize_xml "${local_run}/xunit.xml") \
  <(normalize_xml "${slurm_run}/xunit.xml") >&2 ||
  fail "xunit.xml differs between --executor=local and slurm"
grep -q '"pids":\[[0-9]' "${slurm_run}/results.json" || fail "no task pids in the report"
[[ ! -e "${slurm_run}/slurm_worker.token" ]] || fail "token file left behind"

queue_empty 1 || fail "squeue after the run: $(squeue)"
worker="$(sed -n 's/.*connected (worker pid \([0-9]*\)).*/\1/p' "${slurm_run}/JobLog.demo")"
mapfile -t task_pids < <(grep -o '"pids":\[[0-9,]*\]' "${slurm_run}/results.json" | grep -o '[0-9]\+')
wait_gone 5 "${worker}" "${task_pids[@]}" || fail "a worker or task process outlived the run"

# SIGKILL to the runner while a task runs on the node.
cat >"${dir}/block.textpb" <<EOF
name: "block"
task {
  id: "block"
  command { argv: "/bin/sh" argv: "-c" argv: "echo \$\$ >${dir}/fifo; exec sleep 300" }
}
EOF
mkfifo "${dir}/fifo"
mkdir -p "${dir}/killed"
"${runner}" --no_progress --runinfo_dir="${dir}/killed" --executor=slurm \
  "${dir}/block.textpb" >"${dir}/killed.out" 2>&1 &
runner_pid=$!
read -r task_pid <"${dir}/fifo"  # blocks until the task runs on the node
killed_run="$(ls -d "${dir}"/killed/block.*)"
worker="$(sed -n 's/.*connected (worker pid \([0-9]*\)).*/\1/p' "${killed_run}/JobLog.block")"
[[ -n "$(squeue -h -o %i)" ]] || fail "no slurm job while the task runs"
kill -KILL "${runner_pid}"
wait "${runner_pid}" || true
wait_gone 20 "${task_pid}" "${worker}" || fail "task ${task_pid} or worker ${worker} outlived a SIGKILLed runner"
queue_empty 20 || fail "squeue after the runner was SIGKILLed: $(squeue)"

"${cluster}" down "${dir}" || fail "cluster down found leftovers"
echo PASS
