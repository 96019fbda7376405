# Shared by the --executor=slurm shell tests (sourced): paths, a private
# cluster under a short directory removed on exit, and helpers.
# shellcheck shell=bash

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

# worker_pid RUN_DIR JOB: the worker pid the runner logged.
worker_pid() {
  sed -n 's/.*connected (worker pid \([0-9]*\)).*/\1/p' "$1/JobLog.$2"
}
