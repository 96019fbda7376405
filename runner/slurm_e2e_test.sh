#!/usr/bin/env bash
# The runner with --executor=slurm on a real single-node cluster
# (tools/slurm/cluster.sh, started here):
# - the demo job (functions, pcall, queue, a GoogleTest binary, a command, a
#   failure, a timeout) gives the same results.json and xunit.xml as with the
#   local executor (ids, results, reasons, sections; not times or pids), and
#   the same exit code;
# - its tasks report over TCP with the run's secret (reporter.secret);
# - afterwards squeue lists nothing and no worker or task process is alive;
# - a connection to the run's TCP reporter without the secret, or with a
#   wrong one, is refused;
# - a runner killed with SIGKILL mid-task leaves no job and no process.
set -euo pipefail

# shellcheck source=runner/slurm_test_lib.sh
. "${RUNFILES_DIR:-$0.runfiles}/taskfork/runner/slurm_test_lib.sh"

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
# The tasks reported over TCP with the run's secret (what other nodes use).
[[ -e "${slurm_run}/reporter.secret" ]] || fail "no reporter.secret: the reporter did not listen on TCP"
[[ ! -e "${local_run}/reporter.secret" ]] || fail "a local run listened on TCP"

queue_empty 1 || fail "squeue after the run: $(squeue)"
worker="$(worker_pid "${slurm_run}" demo)"
mapfile -t task_pids < <(grep -o '"pids":\[[0-9,]*\]' "${slurm_run}/results.json" | grep -o '[0-9]\+')
wait_gone 5 "${worker}" "${task_pids[@]}" || fail "a worker or task process outlived the run"

# SIGKILL to the runner while a task runs on the node.
cat >"${dir}/block.textpb" <<EOF
name: "block"
task {
  id: "block"
  command { argv: "/bin/sh" argv: "-c" argv: "echo \$\$ \${TASKFORK_REPORTER_SOCKET} >${dir}/fifo; exec sleep 300" }
}
EOF
mkfifo "${dir}/fifo"
mkdir -p "${dir}/killed"
"${runner}" --no_progress --runinfo_dir="${dir}/killed" --executor=slurm \
  "${dir}/block.textpb" >"${dir}/killed.out" 2>&1 &
runner_pid=$!
read -r task_pid reporter_address <"${dir}/fifo"  # blocks until the task runs on the node
# The reporter the node's tasks use is TCP, and refuses a hello without the
# run's secret or with a wrong one (nothing of it reaches the report).
[[ "${reporter_address}" =~ ^tcp:(.+):([0-9]+)$ ]] ||
  fail "the task's reporter address is ${reporter_address}, not tcp:HOST:PORT"
reporter_host="${BASH_REMATCH[1]}"
reporter_port="${BASH_REMATCH[2]}"
for secret in "" "00"; do
  reply="$(python3 - "${reporter_host}" "${reporter_port}" "${secret}" <<'PY'
import socket, struct, sys
host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
hello = b"\x08\x01\x12\x05block"  # Hello{role: ROLE_CLIENT, task_id: "block"}
if secret:
    hello += b"\x2a" + bytes([len(secret)]) + secret  # secret
message = b"\x0a" + bytes([len(hello)]) + hello  # ClientMessage{hello}
with socket.create_connection((host, port), timeout=10) as s:
    s.sendall(struct.pack("<I", len(message)) + message)
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
print(reply.decode("utf-8", "replace"))
PY
)"
  want="no secret"
  [[ -n "${secret}" ]] && want="wrong secret"
  [[ "${reply}" == *"${want}"* ]] || fail "a hello with secret '${secret}' got: ${reply}"
done
killed_run="$(ls -d "${dir}"/killed/block.*)"
worker="$(worker_pid "${killed_run}" block)"
[[ -n "$(squeue -h -o %i)" ]] || fail "no slurm job while the task runs"
kill -KILL "${runner_pid}"
wait "${runner_pid}" || true
wait_gone 20 "${task_pid}" "${worker}" || fail "task ${task_pid} or worker ${worker} outlived a SIGKILLed runner"
queue_empty 20 || fail "squeue after the runner was SIGKILLed: $(squeue)"

"${cluster}" down "${dir}" || fail "cluster down found leftovers"
echo PASS
