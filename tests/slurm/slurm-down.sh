#!/usr/bin/env bash
# Stop the throw-away Slurm cluster started by tests/slurm/slurm-up.sh.
#
# Cancels the jobs still in that cluster, then stops slurmd, slurmctld and munged through the pid
# files slurm-up.sh left in the state directory (only daemons it started have one), checking that
# each pid still belongs to the expected program; SIGTERM first, SIGKILL after 10 s. Removes the
# /etc/slurm/slurm.conf link when it points into the state directory. Idempotent: daemons already
# gone and missing pid files are fine; exits 0 unless a daemon survives SIGKILL.
#
# Usage: tests/slurm/slurm-down.sh          state directory: $ISLIM_SLURM_ROOT or /tmp/islim-slurm
set -uo pipefail

ROOT=${ISLIM_SLURM_ROOT:-/tmp/islim-slurm}
CONF_LINK=/etc/slurm/slurm.conf
status=0

# running PID PROGRAM: true if PID is alive (not a zombie) and runs PROGRAM.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  case "$stat" in *") Z "*) return 1 ;; esac  # /proc/PID/stat is "PID (COMM) STATE ..."
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# pid_of PIDFILE PROGRAM: the pid in PIDFILE if that process is running PROGRAM.
pid_of() {
  local pid
  pid=$(tr -dc '0-9' 2>/dev/null <"$1") && [ -n "$pid" ] && running "$pid" "$2" && echo "$pid"
}

# stop PIDFILE PROGRAM. The pid is read once: daemons delete their pid file when they start to
# shut down, which is not the same as having stopped (slurmd can hang without its controller).
stop() {
  local pid
  if pid=$(pid_of "$1" "$2"); then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
      running "$pid" "$2" || break
      sleep 0.2
    done
    if running "$pid" "$2"; then
      echo "slurm-down: $2 ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
      sleep 0.5
    fi
    if running "$pid" "$2"; then
      echo "slurm-down: could not stop $2 ($pid)" >&2
      status=1
      return
    fi
    echo "slurm-down: stopped $2 ($pid)"
  fi
  rm -f "$1"
}

# Jobs first, so no job step outlives its slurmd.
if pid_of "$ROOT/slurmctld.pid" slurmctld >/dev/null && [ "$(readlink "$CONF_LINK" 2>/dev/null)" = "$ROOT/slurm.conf" ]; then
  jobs=$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED -o %i 2>/dev/null || true)
  # shellcheck disable=SC2086  # one argument per job id
  [ -z "$jobs" ] || timeout 10 scancel --quiet $jobs 2>/dev/null || true
  for _ in $(seq 30); do
    [ -z "$(timeout 5 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null)" ] && break
    sleep 0.5
  done
fi

stop "$ROOT/slurmd.pid" slurmd
stop "$ROOT/slurmctld.pid" slurmctld
stop "$ROOT/munge/munged.pid" munged

if [ "$(readlink "$CONF_LINK" 2>/dev/null)" = "$ROOT/slurm.conf" ]; then
  rm -f "$CONF_LINK"
fi
exit "$status"
