#!/usr/bin/env bash
# Per-task overhead of --executor=slurm (pilot workers) against its two
# baselines, measured in the same run on a private single-node cluster:
#   srun    one `srun true` step per task (the floor of a step-per-task design)
#   local   --executor=local (a forked process per task on this machine)
# N trivial tasks (/bin/true commands), 2 at a time; prints ms per task (wall
# time of the whole run / N, so the runner's and workers' start-up is included)
# and the ratios.
#
#   tools/bazel run -c opt //runner:slurm_benchmark -- [--tasks=200]
set -euo pipefail

tasks=200
for arg in "$@"; do
  case "${arg}" in
    --tasks=*) tasks="${arg#--tasks=}" ;;
    *) echo "usage: slurm_benchmark [--tasks=N]" >&2; exit 2 ;;
  esac
done
[[ "${tasks}" =~ ^[1-9][0-9]*$ ]] || { echo "slurm_benchmark: --tasks wants a positive number, got ${tasks}" >&2; exit 2; }

runfiles="${RUNFILES_DIR:-$0.runfiles}/taskfork"
runner="${runfiles}/runner/runner"
cluster="${runfiles}/tools/slurm/cluster.sh"
dir="$(mktemp -d /tmp/taskfork-slurm-bench.XXXXXX)"
cleanup() {
  "${cluster}" down "${dir}" >/dev/null 2>&1 || true
  rm -rf "${dir}"
}
trap cleanup EXIT
"${cluster}" up "${dir}" >/dev/null
# shellcheck disable=SC1091
. "${dir}/env.sh"

{
  echo 'name: "bench" max_parallel: 2'
  for ((i = 0; i < tasks; i++)); do
    echo "task { id: \"t${i}\" command { argv: \"/bin/true\" } }"
  done
} >"${dir}/bench.textpb"

now_ns() { date +%s%N; }
# time_ms COMMAND...: wall milliseconds of COMMAND (which must succeed).
time_ms() {
  local start end
  start="$(now_ns)"
  "$@" >"${dir}/last.out" 2>&1 || { echo "slurm_benchmark: $* failed: $(tail -5 "${dir}/last.out")" >&2; exit 1; }
  end="$(now_ns)"
  echo $(((end - start) / 1000000))
}
srun_steps() { seq "${tasks}" | xargs -P 2 -n 1 sh -c 'srun true' _; }
run_job() { mkdir -p "${dir}/runs"; "${runner}" --no_progress --runinfo_dir="${dir}/runs" "$@" "${dir}/bench.textpb"; }

srun true  # warm slurmctld
srun_ms="$(time_ms srun_steps)"
local_ms="$(time_ms run_job --executor=local)"
slurm_ms="$(time_ms run_job --executor=slurm)"
python3 - "${tasks}" "${srun_ms}" "${local_ms}" "${slurm_ms}" <<'PY'
import sys
n, srun, local, slurm = (int(x) for x in sys.argv[1:])
print(f"{n} trivial tasks, 2 at a time (wall time of the run / tasks):")
for name, ms in (("srun true per task (step per task)", srun),
                 ("--executor=slurm (pilot worker)", slurm),
                 ("--executor=local", local)):
    print(f"  {name:36s} {ms / n:8.2f} ms/task  ({ms} ms)")
print(f"  srun-per-task / slurm pilot: {srun / slurm:.1f}x")
print(f"  slurm pilot / local:         {slurm / local:.2f}x")
PY
