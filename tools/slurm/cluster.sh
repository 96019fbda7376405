#!/usr/bin/env bash
# tools/slurm/cluster.sh: a private single-node Slurm cluster under one directory.
#
#   tools/slurm/cluster.sh up DIR      # munged, slurmctld, slurmd; waits until the node is idle
#   . DIR/env.sh                       # SLURM_CONF for srun, sbatch, squeue, scancel, sinfo
#   srun true
#   tools/slurm/cluster.sh down DIR    # cancels every job, stops the daemons, checks leftovers
#   tools/slurm/cluster.sh status DIR  # exit 0 when the cluster under DIR is up and idle
#
# DIR must be short (at most 60 characters: Unix sockets live under it).
# Everything it writes is under DIR (configuration, munge key and socket, state,
# spool, logs, pid files); nothing in /etc, no systemd. The daemons listen on free
# TCP ports picked at `up`, so clusters in different directories do not collide
# (their job ids start at different numbers too). Needs root (slurmd runs jobs as
# their user) and the Debian packages slurm-wlm, slurmctld, slurmd, slurm-client,
# munge (tools/debian_packages.txt).
#
# `down` fails (exit 1) when a job is still queued after scancel or a process of
# a job (one whose environment names DIR's slurm.conf) is still alive.
set -euo pipefail
# The daemons and mungekey are in /usr/sbin, which Bazel's test PATH lacks.
export PATH="${PATH}:/usr/sbin:/sbin"

die() {
  echo "tools/slurm/cluster.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 50 ms until it succeeds.
# The daemons have no readiness notification but their pid files and sinfo.
wait_until() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# running PID: the process exists and is not a zombie (a daemon's zombie
# waits for whichever process reaps orphans here).
running() {
  local state
  state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" || return 1
  [[ -n "${state}" && "${state}" != "Z" && "${state}" != "X" ]]
}

pid_alive() {  # pid_alive PIDFILE (a daemon removes its pid file as it exits)
  local pid
  pid="$(cat "$1" 2>/dev/null)" && [[ -n "${pid}" ]] && running "${pid}"
}

stopped() {  # stopped PID
  ! running "$1"
}

queue_empty() {
  [[ -z "$(squeue -h -o %i 2>/dev/null)" ]]
}

node_idle() {
  [[ "$(sinfo -h -n localhost -o %t 2>/dev/null)" == "idle" ]]
}

free_ports() {  # two free TCP ports on this host
  python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Processes of this cluster's jobs: their environment names its slurm.conf and
# a job id (srun and slurmstepd pass both on), wherever they reparented to.
job_processes() {
  local conf="$1" pid env
  for environ in /proc/[0-9]*/environ; do
    pid="${environ#/proc/}"
    pid="${pid%/environ}"
    env="$({ tr '\0' '\n' <"${environ}"; } 2>/dev/null)" || continue
    if grep -qxF "SLURM_CONF=${conf}" <<<"${env}" && grep -q '^SLURM_JOB_ID=' <<<"${env}"; then
      running "${pid}" && echo "${pid}"
    fi
  done
  return 0
}

no_job_processes() {
  [[ -z "$(job_processes "$1")" ]]
}

cmd_up() {
  local dir="$1"
  [[ "$(id -u)" -eq 0 ]] || die "needs root (slurmd runs each job as its user)"
  for tool in munged mungekey slurmctld slurmd sinfo srun scontrol; do
    command -v "${tool}" >/dev/null ||
      die "${tool} not found: install slurm-wlm slurmctld slurmd slurm-client munge"
  done
  mkdir -p "${dir}"
  dir="$(cd "${dir}" && pwd)"
  # slurmstepd binds Unix sockets under the spool directory and munged one
  # under DIR: sun_path holds 107 bytes.
  ((${#dir} <= 60)) ||
    die "${dir} is ${#dir} characters long; the cluster's Unix sockets need a directory of at most 60 (e.g. mktemp -d /tmp/slurm.XXXXXX)"
  [[ -e "${dir}/etc/slurm.conf" ]] && die "${dir} already holds a cluster (run down first)"
  mkdir -p "${dir}"/{etc,state,spool,log,run}
  chmod 0755 "${dir}"

  # munge: key, socket, log and pid under DIR, owned by the munge user.
  local munge="${dir}/munge"
  mkdir -p "${munge}"/{etc,run,log,lib}
  mungekey --create --keyfile="${munge}/etc/munge.key" >/dev/null 2>&1 ||
    die "mungekey --create --keyfile=${munge}/etc/munge.key failed"
  chown -R munge:munge "${munge}"
  chmod 0700 "${munge}/etc" "${munge}/log" "${munge}/lib"
  chmod 0755 "${munge}" "${munge}/run"
  chmod 0600 "${munge}/etc/munge.key"
  local socket="${munge}/run/munge.socket"
  runuser -u munge -- munged --force \
    --key-file="${munge}/etc/munge.key" --socket="${socket}" \
    --pid-file="${munge}/run/munged.pid" --log-file="${munge}/log/munged.log" \
    --seed-file="${munge}/lib/munged.seed" ||
    die "munged did not start (see ${munge}/log/munged.log)"
  wait_until 10 munged test -S "${socket}" ||
    die "munged socket ${socket} did not appear (see ${munge}/log/munged.log)"

  local ports ctld_port slurmd_port first_job
  read -r ctld_port slurmd_port <<<"$(free_ports)"
  # Job ids of different clusters on one host must differ: the cgroup paths
  # of a job (/sys/fs/cgroup/*/slurm/uid_0/job_N) are shared by all slurmds.
  first_job=$(((RANDOM << 8 | RANDOM & 255) % 1000000 + 1000))
  local node
  node="$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ *$//')"
  cat >"${dir}/etc/slurm.conf" <<EOF
# Written by tools/slurm/cluster.sh up ${dir}
ClusterName=taskfork
SlurmctldHost=localhost
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${socket}
CredType=cred/munge
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool/slurmd.%n
SlurmctldPidFile=${dir}/run/slurmctld.pid
SlurmdPidFile=${dir}/run/slurmd.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${dir}/log/jobcomp.txt
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MailProg=/bin/true
FirstJobId=${first_job}
ReturnToService=2
KillWait=2
MinJobAge=2
NodeName=localhost NodeAddr=127.0.0.1 ${node}
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  cat >"${dir}/etc/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
CgroupAutomount=no
EOF
  cat >"${dir}/env.sh" <<EOF
export SLURM_CONF=${dir}/etc/slurm.conf
EOF
  export SLURM_CONF="${dir}/etc/slurm.conf"

  slurmctld -f "${SLURM_CONF}" ||
    die "slurmctld did not start (see ${dir}/log/slurmctld.log)"
  slurmd -f "${SLURM_CONF}" -N localhost ||
    die "slurmd did not start (see ${dir}/log/slurmd.log)"
  wait_until 20 slurmctld pid_alive "${dir}/run/slurmctld.pid" ||
    die "slurmctld is not running (see ${dir}/log/slurmctld.log)"
  wait_until 20 slurmd pid_alive "${dir}/run/slurmd.pid" ||
    die "slurmd is not running (see ${dir}/log/slurmd.log)"
  wait_until 30 "an idle node" node_idle ||
    die "node localhost not idle after 30 s: $(sinfo -h -n localhost -o '%t %E' 2>&1) (see ${dir}/log/)"
  echo "slurm cluster up in ${dir}: SLURM_CONF=${SLURM_CONF}"
}

cmd_down() {
  local dir="$1"
  [[ -d "${dir}" ]] || die "no directory ${dir}"
  dir="$(cd "${dir}" && pwd)"
  local conf="${dir}/etc/slurm.conf"
  local failed=0
  if [[ -e "${conf}" ]]; then
    export SLURM_CONF="${conf}"
    if pid_alive "${dir}/run/slurmctld.pid"; then
      scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
      if ! wait_until 30 "an empty queue" queue_empty; then
        echo "tools/slurm/cluster.sh: jobs still queued after scancel:" >&2
        squeue >&2 || true
        failed=1
      fi
      scontrol shutdown >/dev/null 2>&1 || true
    fi
    for daemon in slurmd slurmctld; do
      local pid
      pid="$(cat "${dir}/run/${daemon}.pid" 2>/dev/null)" || continue
      if ! wait_until 20 "${daemon} to exit" stopped "${pid}"; then
        kill -KILL "${pid}" 2>/dev/null || true
        echo "tools/slurm/cluster.sh: ${daemon} (pid ${pid}) did not exit; killed" >&2
        failed=1
      fi
    done
    local left=""
    # A cancelled job's processes end asynchronously (slurmstepd signals them).
    wait_until 10 "the jobs' processes to end" no_job_processes "${conf}" ||
      left="$(job_processes "${conf}" | tr '\n' ' ')"
    if [[ -n "${left// /}" ]]; then
      echo "tools/slurm/cluster.sh: processes of jobs left: ${left}" >&2
      ps -o pid,ppid,user,cmd -p "$(echo ${left} | tr ' ' ',')" >&2 || true
      # shellcheck disable=SC2086
      kill -KILL ${left} 2>/dev/null || true
      failed=1
    fi
  fi
  local munge_pid
  if munge_pid="$(cat "${dir}/munge/run/munged.pid" 2>/dev/null)"; then
    kill -TERM "${munge_pid}" 2>/dev/null || true
    wait_until 10 "munged to exit" stopped "${munge_pid}" || {
      kill -KILL "${munge_pid}" 2>/dev/null || true
      echo "tools/slurm/cluster.sh: munged (pid ${munge_pid}) did not exit; killed" >&2
      failed=1
    }
  fi
  rm -f "${conf}"
  ((failed == 0)) || die "cluster in ${dir} stopped with leftovers (above)"
  echo "slurm cluster in ${dir} stopped"
}

cmd_status() {
  local dir
  dir="$(cd "$1" && pwd)"
  export SLURM_CONF="${dir}/etc/slurm.conf"
  [[ -e "${SLURM_CONF}" ]] || die "no cluster in ${dir}"
  pid_alive "${dir}/run/slurmctld.pid" || die "slurmctld of ${dir} is not running"
  pid_alive "${dir}/run/slurmd.pid" || die "slurmd of ${dir} is not running"
  node_idle || die "node localhost is $(sinfo -h -n localhost -o %t 2>&1)"
}

(($# == 2)) || usage
case "$1" in
  up) cmd_up "$2" ;;
  down) cmd_down "$2" ;;
  status) cmd_status "$2" ;;
  *) usage ;;
esac
