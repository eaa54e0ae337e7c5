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

# The live processes of group $1 (its leader, a worker's nanny, and the process the
# nanny started), provided one of them is a dask process: a PID file can outlive its
# process. Zombies (exited, not yet reaped) count as gone.
group() {
    ps -eo pid=,pgid=,stat=,args= | awk -v g="$1" '
        $2 == g && $3 !~ /^Z/ { pids = pids " " $1; if ($0 ~ /dask|spawn_main/) ours = 1 }
        END { if (ours) print pids }'
}

# stop NAME...: SIGTERM the leaders of NAME.pid, wait up to $grace s, then SIGKILL
# every process left in their groups.
stop() {
    local name pid leaders=() names=() waited=0
    for name in "$@"; do
        [ -f "$run_dir/$name.pid" ] || continue
        pid=$(cat "$run_dir/$name.pid")
        if [ -n "$(group "$pid")" ]; then
            kill -TERM "$pid" 2>/dev/null || true # a dead leader may leave its group
            leaders+=("$pid")
            names+=("$name")
        fi
    done
    [ "${#leaders[@]}" -gt 0 ] || return 0
    echo "stop-cluster: stopping ${names[*]}"
    while [ -n "$(for pid in "${leaders[@]}"; do group "$pid"; done)" ]; do
        if [ "$waited" = $((grace * 5)) ]; then
            echo "stop-cluster: still running after ${grace}s: SIGKILL" >&2
            for pid in "${leaders[@]}"; do
                # shellcheck disable=SC2046
                kill -KILL $(group "$pid") 2>/dev/null || true
            done
        elif [ "$waited" -gt $((grace * 5 + 50)) ]; then
            die "processes of ${names[*]} survived SIGKILL for 10s"
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
