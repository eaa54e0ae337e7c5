#!/usr/bin/env bash
# Start a dask cluster of plain processes: one `dask scheduler` and N `dask worker`s on
# this host, or (--workers-only) N more workers on another host joining a running
# scheduler. Each process runs in the background with its log and PID in the run
# directory; the script returns once all N workers are connected, and fails (stopping
# what it started) if they are not within --timeout seconds.
#
#   deploy/processes/start-cluster.sh --run-dir /shared/dask/run --n-workers 4 \
#       --nthreads 4 --memory-limit 16GiB
#   dasknmf submit job.yaml --scheduler-file /shared/dask/run/scheduler.json
#   deploy/processes/stop-cluster.sh --run-dir /shared/dask/run
#
# See deploy/README.md, and `start-cluster.sh --help` for every option.
set -euo pipefail
set -m # each background process leads its own process group: stop-cluster.sh can
# SIGKILL a worker together with the process its nanny started

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

usage() {
    cat <<EOF
Usage: $(basename "$0") [OPTIONS] [-- EXTRA_WORKER_ARGS...]

Start 'dask scheduler' and N 'dask worker' processes in the background, wait until the
N workers are connected, print the scheduler's address.

Where:
  --run-dir DIR            logs, PID files and worker scratch space (default: ./dask-cluster)
  --scheduler-file FILE    the scheduler's connection file (default: RUN_DIR/scheduler.json);
                           on several hosts, a path on a shared file system
  --workers-only           start only workers, joining the scheduler of --scheduler-file
                           (which must exist) or --scheduler-address
  --scheduler-address A    with --workers-only: the scheduler's address (tcp://host:8786)
Scheduler:
  --host HOST              address the scheduler listens on (default: dask's choice)
  --port PORT              its port (default: 8786; 0: any free port)
  --dashboard-address A    the dashboard's address (default: :8787; 'none': no dashboard)
Workers:
  --n-workers N            worker processes to start on this host (default: 2; 0: none)
  --nthreads N             threads per worker (default: 1)
  --memory-limit SIZE      memory per worker: 16GiB, 4e9, auto (default: auto)
  --worker-host HOST       address the workers listen on (default: dask's choice)
  --name-prefix P          workers are named P-0, P-1, ... (default: HOSTNAME-PID)
  --no-nanny               run workers without a nanny (a killed worker stays dead)
  -- ARGS...               passed to every 'dask worker' (e.g. -- --death-timeout 120)
Both:
  --tls-dir DIR            TLS for every connection, with the certificates that
                           deploy/tls/make-certs.sh wrote to DIR
  --dask-config FILE       DASK_CONFIG for the processes (default: \$DASK_CONFIG, else
                           $REPO/configs/dask.yaml)
  --timeout SECONDS        how long to wait for the scheduler and workers (default: 60)
  --dask CMD               the dask command (default: dask on PATH)
  --python CMD             Python with distributed, for the readiness check
                           (default: the python next to the dask command)
EOF
}

die() {
    echo "start-cluster: error: $*" >&2
    exit 2
}

run_dir=./dask-cluster
scheduler_file=
workers_only=0
scheduler_address=
host=
port=8786
dashboard_address=:8787
n_workers=2
nthreads=1
memory_limit=auto
worker_host=
name_prefix="${HOSTNAME:-$(uname -n)}-$$"
nanny=1
tls_dir=
dask_config=${DASK_CONFIG:-$REPO/configs/dask.yaml}
timeout=60
dask_cmd=dask
python_cmd=
extra_worker_args=()

need() { [ "$#" -ge 2 ] || die "$1 needs a value"; }
while [ "$#" -gt 0 ]; do
    case "$1" in
    --run-dir) need "$@"; run_dir=$2; shift 2 ;;
    --scheduler-file) need "$@"; scheduler_file=$2; shift 2 ;;
    --workers-only) workers_only=1; shift ;;
    --scheduler-address) need "$@"; scheduler_address=$2; shift 2 ;;
    --host) need "$@"; host=$2; shift 2 ;;
    --port) need "$@"; port=$2; shift 2 ;;
    --dashboard-address) need "$@"; dashboard_address=$2; shift 2 ;;
    --n-workers) need "$@"; n_workers=$2; shift 2 ;;
    --nthreads) need "$@"; nthreads=$2; shift 2 ;;
    --memory-limit) need "$@"; memory_limit=$2; shift 2 ;;
    --worker-host) need "$@"; worker_host=$2; shift 2 ;;
    --name-prefix) need "$@"; name_prefix=$2; shift 2 ;;
    --no-nanny) nanny=0; shift ;;
    --tls-dir) need "$@"; tls_dir=$2; shift 2 ;;
    --dask-config) need "$@"; dask_config=$2; shift 2 ;;
    --timeout) need "$@"; timeout=$2; shift 2 ;;
    --dask) need "$@"; dask_cmd=$2; shift 2 ;;
    --python) need "$@"; python_cmd=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_worker_args=("$@"); break ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done

# -- check the options before starting anything ---------------------------------------
is_count() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_count "$n_workers" || die "--n-workers must be a whole number; got '$n_workers'"
if ! is_count "$nthreads" || [ "$nthreads" -lt 1 ]; then
    die "--nthreads must be >= 1; got '$nthreads'"
fi
is_count "$port" || die "--port must be a port number; got '$port'"
is_count "$timeout" || die "--timeout must be whole seconds; got '$timeout'"
[ -f "$dask_config" ] || die "the dask config '$dask_config' is not a file (--dask-config)"
command -v "$dask_cmd" >/dev/null || die "'$dask_cmd' not found: install distributed or pass --dask"
if [ -z "$python_cmd" ]; then
    python_cmd="$(dirname "$(command -v "$dask_cmd")")/python"
    [ -x "$python_cmd" ] || python_cmd=python3
fi
if [ "$workers_only" = 1 ]; then
    [ "$n_workers" -ge 1 ] || die "--workers-only needs --n-workers >= 1"
    if [ -n "$scheduler_address" ]; then
        [ -z "$scheduler_file" ] || die "give --scheduler-file or --scheduler-address, not both"
    else
        [ -n "$scheduler_file" ] || die "--workers-only needs --scheduler-file or --scheduler-address"
        [ -f "$scheduler_file" ] || die "the scheduler file '$scheduler_file' does not exist"
    fi
else
    [ -z "$scheduler_address" ] || die "--scheduler-address goes with --workers-only"
fi

mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
dask_config=$(cd "$(dirname "$dask_config")" && pwd)/$(basename "$dask_config")
if [ -z "$scheduler_file" ] && [ -z "$scheduler_address" ]; then
    scheduler_file=$run_dir/scheduler.json
fi
if [ -n "$scheduler_file" ]; then
    mkdir -p "$(dirname "$scheduler_file")"
    scheduler_file=$(cd "$(dirname "$scheduler_file")" && pwd)/$(basename "$scheduler_file")
fi

for pid_file in "$run_dir"/*.pid; do
    [ -e "$pid_file" ] || continue
    case "$(ps -ww -p "$(cat "$pid_file")" -o args= 2>/dev/null || true)" in
    *dask*)
        die "$pid_file: process $(cat "$pid_file") is running; stop that cluster first" \
            "(deploy/processes/stop-cluster.sh --run-dir $run_dir) or use another --run-dir"
        ;;
    esac
    rm -f "$pid_file"
done

tls_scheduler=() tls_worker=() tls_check=()
if [ -n "$tls_dir" ]; then
    for f in ca.pem scheduler.pem scheduler-key.pem worker.pem worker-key.pem; do
        [ -f "$tls_dir/$f" ] || die "--tls-dir: '$tls_dir/$f' is missing (see deploy/tls/make-certs.sh)"
    done
    tls_dir=$(cd "$tls_dir" && pwd)
    tls_scheduler=(--protocol tls --tls-ca-file "$tls_dir/ca.pem"
        --tls-cert "$tls_dir/scheduler.pem" --tls-key "$tls_dir/scheduler-key.pem")
    tls_worker=(--tls-ca-file "$tls_dir/ca.pem"
        --tls-cert "$tls_dir/worker.pem" --tls-key "$tls_dir/worker-key.pem")
    # The check connects as a worker would: this host may hold only the worker's files.
    tls_check=("${tls_worker[@]}")
    export DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=True
fi
export DASK_CONFIG=$dask_config

# -- start -----------------------------------------------------------------------------
# (${a[@]+"${a[@]}"} expands a possibly empty array: bash before 4.4 calls "${a[@]}" of an
# empty array unbound under set -u.)
started=()
launch() { # launch NAME COMMAND...: run COMMAND in the background; NAME.log, NAME.pid
    local name=$1
    shift
    nohup "$@" </dev/null >"$run_dir/$name.log" 2>&1 &
    echo "$!" >"$run_dir/$name.pid"
    started+=("$!")
}

fail() {
    echo "start-cluster: error: $*" >&2
    for log in "$run_dir"/*.log; do
        [ -e "$log" ] || continue
        echo "---- last lines of $log" >&2
        tail -n 15 "$log" >&2
    done
    echo "start-cluster: stopping what was started" >&2
    "$HERE/stop-cluster.sh" --run-dir "$run_dir" --grace 5 >&2 || true
    exit 1
}
trap 'fail "interrupted"' INT TERM

if [ "$workers_only" = 0 ]; then
    rm -f "$scheduler_file" # a stale file would be taken for the new scheduler's
    printf '%s\n' "$scheduler_file" >"$run_dir/scheduler-file"
    scheduler_cmd=("$dask_cmd" scheduler --scheduler-file "$scheduler_file" --port "$port")
    [ -z "$host" ] || scheduler_cmd+=(--host "$host")
    if [ "$dashboard_address" = none ]; then
        scheduler_cmd+=(--no-dashboard)
    else
        scheduler_cmd+=(--dashboard-address "$dashboard_address")
    fi
    launch scheduler "${scheduler_cmd[@]}" ${tls_scheduler[@]+"${tls_scheduler[@]}"}
fi

names=()
i=0
while [ "$i" -lt "$n_workers" ]; do
    name=$name_prefix-$i
    worker_cmd=("$dask_cmd" worker --name "$name" --nthreads "$nthreads"
        --memory-limit "$memory_limit" --local-directory "$run_dir/worker-$i")
    if [ -n "$scheduler_address" ]; then
        worker_cmd+=("$scheduler_address")
    else
        worker_cmd+=(--scheduler-file "$scheduler_file")
    fi
    [ -z "$worker_host" ] || worker_cmd+=(--host "$worker_host")
    [ "$nanny" = 1 ] || worker_cmd+=(--no-nanny)
    launch "worker-$i" "${worker_cmd[@]}" ${tls_worker[@]+"${tls_worker[@]}"} \
        ${extra_worker_args[@]+"${extra_worker_args[@]}"}
    names+=("$name")
    i=$((i + 1))
done

# -- wait until every worker is connected -------------------------------------------
check_cmd=("$python_cmd" "$HERE/wait_for_workers.py" --timeout "$timeout"
    --names "$(
        IFS=,
        echo "${names[*]}"
    )")
if [ -n "$scheduler_address" ]; then
    check_cmd+=(--address "$scheduler_address")
else
    check_cmd+=(--scheduler-file "$scheduler_file")
fi
[ "$workers_only" = 1 ] || check_cmd+=(--dashboard) # a second line: its link, or why none
for pid in ${started[@]+"${started[@]}"}; do
    check_cmd+=(--pid "$pid")
done
rc=0
ready=$("${check_cmd[@]}" ${tls_check[@]+"${tls_check[@]}"}) || rc=$?
address=$(sed -n 1p <<<"$ready")
dashboard=$(sed -n 2p <<<"$ready")
case "$rc" in
0) ;;
1) fail "the scheduler and $n_workers worker(s) were not up within ${timeout}s (--timeout)" ;;
3) fail "a process exited during start-up (its log is below)" ;;
*) fail "the readiness check failed (exit $rc): $(printf '%q ' "${check_cmd[@]}")" ;;
esac
trap - INT TERM

if [ "$workers_only" = 0 ]; then
    echo "dask cluster up: scheduler $address, $n_workers worker(s) on this host"
    echo "  scheduler file : $scheduler_file"
    echo "  dashboard      : $dashboard"
else
    echo "$n_workers worker(s) joined the scheduler at $address"
fi
echo "  logs and PIDs  : $run_dir"
if [ -n "$scheduler_file" ]; then
    target="--scheduler-file $scheduler_file"
else
    target="--address $address"
fi
if [ -n "$tls_dir" ]; then
    target="$target --tls-ca-file $tls_dir/ca.pem --tls-cert $tls_dir/client.pem"
    target="$target --tls-key $tls_dir/client-key.pem"
fi
echo "  submit a job   : dasknmf submit JOB.yaml $target"
echo "  stop           : $HERE/stop-cluster.sh --run-dir $run_dir"
