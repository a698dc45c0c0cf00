#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster (controller + compute node on this machine) for CI.
#
# Needs root on Debian 12 (or another Debian/Ubuntu with Slurm >= 22.05), no systemd, no cgroups.
# Installs slurmctld, slurmd, slurm-client and munge with apt-get when they are missing, writes
# slurm.conf (from slurm.conf.in) into the state directory, links it to /etc/slurm/slurm.conf (the
# path compiled into Slurm; Snakemake's job steps drop SLURM_CONF), starts munged (unless one already
# answers), slurmctld and slurmd, and waits until the node is idle. Every daemon it starts leaves its
# pid file in the state directory; tests/slurm/slurm-down.sh stops exactly those. On failure it runs
# slurm-down.sh itself and prints the daemon logs.
#
# Usage: tests/slurm/slurm-up.sh            state directory: $ISLIM_SLURM_ROOT or /tmp/islim-slurm
# Environment: ISLIM_SLURM_ROOT, ISLIM_SLURM_CTLD_PORT (6817), ISLIM_SLURM_SLURMD_PORT (6818).
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${ISLIM_SLURM_ROOT:-/tmp/islim-slurm}
CONF_LINK=/etc/slurm/slurm.conf

fail() { echo "slurm-up: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs packages and starts daemons); found uid $(id -u)"
if [ -e "$CONF_LINK" ] && [ "$(readlink "$CONF_LINK" || true)" != "$ROOT/slurm.conf" ]; then
  fail "$CONF_LINK exists and is not this script's link; refusing to replace a real Slurm configuration"
fi
case "$ROOT" in /?*) ;; *) fail "ISLIM_SLURM_ROOT must be an absolute path, found '$ROOT'" ;; esac
if [ -s "$ROOT/slurmctld.pid" ] && kill -0 "$(cat "$ROOT/slurmctld.pid")" 2>/dev/null; then
  fail "the slurmctld of $ROOT/slurmctld.pid runs: a cluster is already up (run slurm-down.sh first)"
fi

# From here on, a failure stops whatever this script has started.
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] && return 0
  echo "slurm-up: failed (exit $rc); daemon logs follow, then everything started is stopped" >&2
  tail -n 30 "$ROOT"/log/*.log "$ROOT"/munge/*.log >&2 2>/dev/null || true
  "$HERE/slurm-down.sh" >&2 || true
  return "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "slurm-up: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # 90 % of what slurmd detects, so the node registers even if the detection fluctuates.
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  [ -n "$mem" ] || fail "could not read RealMemory from 'slurmd -C'"
  mem=$((mem * 9 / 10))
  sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM@|$mem|g" -e "s|@ROOT@|$ROOT|g" \
      -e "s|@CTLD_PORT@|${ISLIM_SLURM_CTLD_PORT:-6817}|g" \
      -e "s|@SLURMD_PORT@|${ISLIM_SLURM_SLURMD_PORT:-6818}|g" \
      "$HERE/slurm.conf.in" >"$ROOT/slurm.conf"
  mkdir -p "$(dirname "$CONF_LINK")"
  ln -sfn "$ROOT/slurm.conf" "$CONF_LINK"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "slurm-up: a munged already answers; using it (it will not be stopped)"
    return 0
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create
  install -d -o munge -g munge -m 0755 /run/munge "$ROOT/munge"
  runuser -u munge -- /usr/sbin/munged --pid-file="$ROOT/munge/munged.pid" --log-file="$ROOT/munge/munged.log"
  wait_for "munged" 'munge -n | unmunge'
}

# wait_for WHAT COMMAND: retry COMMAND (each try at most 5 s) for up to 60 s, while the daemons
# this script started keep running.
wait_for() {
  local deadline=$((SECONDS + 60)) name
  until timeout 5 bash -c "$2" >/dev/null 2>&1; do
    for name in slurmctld slurmd; do
      if [ -s "$ROOT/$name.pid" ] && ! kill -0 "$(cat "$ROOT/$name.pid")" 2>/dev/null; then
        fail "$name exited while waiting for $1 (see $ROOT/log/$name.log)"
      fi
    done
    [ "$SECONDS" -lt "$deadline" ] || fail "$1 did not come up within 60 s (check: $2)"
    sleep 0.5
  done
}

install_packages
rm -rf "$ROOT/state" "$ROOT/spool" "$ROOT/log"
mkdir -p "$ROOT"/{state,spool,log}
write_config
start_munge
slurmctld
slurmd
wait_for "the node" "sinfo -h -o %T | grep -qx idle"
timeout 60 srun --quiet --time=1 hostname >/dev/null || fail "srun smoke test failed"
sinfo
echo "slurm-up: cluster up; state in $ROOT"
