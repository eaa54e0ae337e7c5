#!/usr/bin/env bash
# A one-node SLURM on this machine (127.0.0.1), for trying the recipes of deploy/slurm
# and for the slow tests: munged, slurmctld and slurmd started with a slurm.conf and
# all their state, sockets and logs in one directory; `stop` ends exactly the daemons
# that `start` started (their PID files), nothing else.
#
#   deploy/slurm/local-slurm.sh start /tmp/slurm     # prints: export SLURM_CONF=...
#   export SLURM_CONF=/tmp/slurm/slurm.conf
#   sbatch --cpus-per-task=1 --mem=1G deploy/slurm/dasknmf.sbatch job.yaml
#   deploy/slurm/local-slurm.sh stop /tmp/slurm
#
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and root (the
# daemons run as root: SlurmUser=root). Nothing outside DIR is written.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") start|stop|status DIR [--memory MB] [--partition NAME]

start   write DIR/slurm.conf (one node, this host on 127.0.0.1, this machine's CPUs,
        MB of memory (default: 8000), partition NAME (default: debug)), start
        munged, slurmctld and slurmd on it and wait until the node is idle
stop    stop the daemons that 'start' started (the PID files in DIR)
status  'sinfo' of that SLURM
Then use it with: export SLURM_CONF=DIR/slurm.conf
EOF
}

die() {
    echo "local-slurm: error: $*" >&2
    exit 2
}

[ "$#" -ge 1 ] || { usage >&2; exit 2; }
case "$1" in
-h | --help) usage; exit 0 ;;
start | stop | status) action=$1 ;;
*) die "unknown action '$1' (see --help)" ;;
esac
[ "$#" -ge 2 ] || die "$action needs a directory"
dir=$2
shift 2
memory=8000
partition=debug
while [ "$#" -gt 0 ]; do
    case "$1" in
    --memory) [ "$#" -ge 2 ] || die "--memory needs a value"; memory=$2; shift 2 ;;
    --partition) [ "$#" -ge 2 ] || die "--partition needs a value"; partition=$2; shift 2 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
case "$memory" in '' | *[!0-9]*) die "--memory must be megabytes; got '$memory'" ;; esac

daemons=(slurmd slurmctld munged) # stopping order

# pid_of NAME: the PID in DIR/NAME.pid when that process is still NAME.
pid_of() {
    local pid
    [ -f "$dir/$1.pid" ] || return 1
    pid=$(cat "$dir/$1.pid")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

stop_all() {
    local name pid waited
    for name in "${daemons[@]}"; do
        pid=$(pid_of "$name") || continue
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while [ -e "/proc/$pid" ] && [ "$waited" -lt 100 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        [ ! -e "/proc/$pid" ] || kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/$name.pid"
    done
}

if [ "$action" = stop ]; then
    [ -d "$dir" ] || die "no directory '$dir'"
    stop_all
    echo "local-slurm: stopped (logs in $dir)"
    exit 0
fi
if [ "$action" = status ]; then
    SLURM_CONF=$dir/slurm.conf sinfo
    exit 0
fi

for command in munged slurmctld slurmd sinfo sbatch; do
    command -v "$command" >/dev/null 2>&1 ||
        PATH=$PATH:/usr/sbin command -v "$command" >/dev/null 2>&1 ||
        die "'$command' not found: apt-get install slurm-wlm munge"
done
export PATH=$PATH:/usr/sbin
[ "$(id -u)" = 0 ] || die "the daemons run as root here (SlurmUser=root): run as root"
for name in "${daemons[@]}"; do
    ! pid_of "$name" >/dev/null || die "$name of '$dir' is running: stop it first"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
chmod 700 "$dir/munge"
# munged wants a key readable by its user only; a fresh one for this SLURM.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$dir/munge/munge.key"

# Free ports for slurmctld and slurmd: another SLURM (or this one's last run) may hold
# the default ones.
read -r ctld_port slurmd_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
host=$(hostname -s)
cat >"$dir/slurm.conf" <<EOF
# Written by deploy/slurm/local-slurm.sh: one node, this host, on 127.0.0.1.
ClusterName=dasknmf-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
InactiveLimit=0
# A job at its time limit gets SIGTERM at once (no grace beyond --time), and SIGKILL
# 5 s later: slurmctld looks at time limits every 30 s, so a job ends 0-30 s after its
# limit, and a re-submission (tests/cluster/test_slurm_real.py) need not wait longer.
OverTimeLimit=0
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$dir/slurm.conf

trap 'echo "local-slurm: start failed; logs in $dir" >&2; stop_all' ERR
munged --force --key-file "$dir/munge/munge.key" --socket "$dir/munge/munge.socket" \
    --pid-file "$dir/munged.pid" --log-file "$dir/munged.log" --seed-file "$dir/munge/seed"
slurmctld -f "$dir/slurm.conf" -i
slurmd -f "$dir/slurm.conf"

# Ready when the node is idle (slurmd registered).
waited=0
until sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; do
    if [ "$waited" -ge 300 ]; then
        echo "local-slurm: the node is not idle after 30s:" >&2
        sinfo -N >&2 || true
        tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
        false
    fi
    sleep 0.1
    waited=$((waited + 1))
done
trap - ERR
echo "local-slurm: up (node $host, $(nproc) CPUs, ${memory} MB, partition $partition)"
echo "export SLURM_CONF=$dir/slurm.conf"
