#!/usr/bin/env bash
# Stop the dask processes that start-cluster.sh started from a run directory: workers
# first, then the scheduler, each with SIGTERM so that it closes cleanly; whatever is
# still running after the grace period is killed with SIGKILL, together with its
# process group (a worker's nanny and the worker process it started).
#
#   deploy/processes/stop-cluster.sh --run-dir /shared/dask/run [--grace 20]
#
# On several hosts, run it on each host with the run directory used there.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [--run-dir DIR] [--grace SECONDS]

Stop the processes whose PID files (*.pid) are in DIR (default: ./dask-cluster):
SIGTERM, then SIGKILL after SECONDS (default: 20) for any still running. Removes the
PID files, and the scheduler file when this run directory started the scheduler.
Logs are kept.
EOF
}

die() {
    echo "stop-cluster: error: $*" >&2
    exit 2
}

run_dir=./dask-cluster
grace=20
while [ "$#" -gt 0 ]; do
    case "$1" in
    --run-dir) [ "$#" -ge 2 ] || die "--run-dir needs a value"; run_dir=$2; shift 2 ;;
    --grace) [ "$#" -ge 2 ] || die "--grace needs a value"; grace=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
case "$grace" in '' | *[!0-9]*) die "--grace must be whole seconds; got '$grace'" ;; esac
[ -d "$run_dir" ] || die "no run directory '$run_dir'"

# What marks a process as one of ours: the dask command, or the process a nanny spawned.
OURS='dask|spawn_main'

# The live processes that leader $1 stands for: itself, the members of its process
# group (a worker's nanny and the process the nanny started), and the descendants of
# any of them; printed only when one of them is a dask process, since a PID file can
# outlive its process. Descendants count too because a process group alone is not
# enough: a leader whose background start did not make it a group leader, or a child
# that moved to a group of its own, must still be stopped. Zombies (exited, not yet
# reaped) count as gone.
group() {
    ps -ww -eo pid=,ppid=,pgid=,stat=,args= | awk -v g="$1" -v ours="$OURS" '
        { pid[NR] = $1; ppid[NR] = $2; pgid[NR] = $3; stat[NR] = $4; line[NR] = $0
          if ($1 == g || $3 == g) member[$1] = 1 }
        END {
            do {
                grown = 0
                for (i = 1; i <= NR; i++)
                    if (!(pid[i] in member) && (ppid[i] in member)) { member[pid[i]] = 1; grown = 1 }
            } while (grown)
            for (i = 1; i <= NR; i++)
                if ((pid[i] in member) && stat[i] !~ /^Z/) {
                    pids = pids " " pid[i]
                    if (line[i] ~ ours) found = 1
                }
            if (found) print pids
        }'
}

# live PID...: those of PID... still running a dask process (zombies count as gone,
# and so does a PID the system has given to another program since).
live() {
    [ "$#" -gt 0 ] || return 0
    ps -ww -o pid=,stat=,args= -p "$(
        IFS=,
        echo "$*"
    )" | awk -v ours="$OURS" '$2 !~ /^Z/ && $0 ~ ours { print $1 }' || true # ps fails when none is left
}

# What is left of the processes stop() signalled, one line of PIDs (empty: none).
remaining() {
    { for pid in "${leaders[@]}"; do group "$pid"; done; live "${tracked[@]}"; } |
        tr ' ' '\n' | awk 'NF' | sort -un | paste -sd ' ' - || true
}

# stop NAME...: SIGTERM the leaders of NAME.pid, wait up to $grace s, then SIGKILL
# every process left of theirs: what group() finds now, and what it found before the
# SIGTERM (a worker whose nanny exited first is no longer anyone's descendant).
stop() {
    local name pid members left leaders=() names=() tracked=() waited=0
    for name in "$@"; do
        [ -f "$run_dir/$name.pid" ] || continue
        pid=$(cat "$run_dir/$name.pid")
        members=$(group "$pid")
        if [ -n "$members" ]; then
            kill -TERM "$pid" 2>/dev/null || true # a dead leader may leave its group
            leaders+=("$pid")
            names+=("$name")
            read -ra members <<<"$members"
            tracked+=("${members[@]}")
        fi
    done
    [ "${#leaders[@]}" -gt 0 ] || return 0
    echo "stop-cluster: stopping ${names[*]}"
    while left=$(remaining); [ -n "$left" ]; do
        if [ "$waited" = $((grace * 5)) ]; then
            echo "stop-cluster: still running after ${grace}s: SIGKILL $left" >&2
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
        elif [ "$waited" -gt $((grace * 5 + 50)) ]; then
            die "processes of ${names[*]} survived SIGKILL for 10s: $left"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
}

workers=()
for pid_file in "$run_dir"/worker-*.pid; do
    [ -e "$pid_file" ] || continue
    name=$(basename "$pid_file" .pid)
    workers+=("$name")
done
stop ${workers[@]+"${workers[@]}"}
stop scheduler

rm -f "$run_dir"/*.pid
if [ -f "$run_dir/scheduler-file" ]; then
    rm -f "$(cat "$run_dir/scheduler-file")" "$run_dir/scheduler-file"
fi
echo "stop-cluster: stopped (logs in $run_dir)"
