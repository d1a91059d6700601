#!/usr/bin/env bash
# The smoke preset through `--profile profiles/slurm` on a real (one-node, throw-away) SLURM cluster.
#
#   tests/slurm/run_slurm_smoke.sh [gpu|nogpu]      # root on Debian/Ubuntu; `make slurm-test` runs it
#
# gpu (default): the node has a (fake) GPU and no accounting database. The smoke preset runs from an
#   empty folder through profiles/slurm; while a training job runs, it is requeued (`scontrol requeue`)
#   after its first checkpoint, and must resume from it (metrics.json: resumed_from_iteration > 0).
# nogpu: the node has no GPU. profiles/slurm must stop at once, before any submission, naming the
#   refused resource and profiles/slurm-cpu; then the smoke preset runs through profiles/slurm-cpu.
# Both end with the report. Every daemon this script started is stopped by PID on exit.
# FEBM_SLURM_TEST_DIR=DIR keeps the run there (default: a new temporary folder, removed on success).
set -euo pipefail

VARIANT=${1:-gpu}
case $VARIANT in gpu | nogpu) ;; *) echo "usage: $0 [gpu|nogpu]" >&2 && exit 2 ;; esac
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/tests/slurm
WORK=${FEBM_SLURM_TEST_DIR:-$(mktemp -d /tmp/febm-slurm-smoke.XXXXXX)}
# The whole Snakemake run, requeue included, must end within this (seconds); never hang CI.
RUN_LIMIT=${FEBM_SLURM_TEST_LIMIT:-600}
SNAKEMAKE_PID=""
STARTED=$SECONDS

# shellcheck source=tests/slurm/cluster.sh
source "$HERE/cluster.sh"

say() { echo "[slurm-smoke $((SECONDS - STARTED))s] $*"; }

finish() {
    local status=$?
    if [ -n "$SNAKEMAKE_PID" ] && kill -0 "$SNAKEMAKE_PID" 2>/dev/null; then
        kill -INT "$SNAKEMAKE_PID" 2>/dev/null || true # Snakemake cancels its SLURM jobs on SIGINT
        for _ in $(seq 30); do kill -0 "$SNAKEMAKE_PID" 2>/dev/null || break; sleep 1; done
        kill -9 "$SNAKEMAKE_PID" 2>/dev/null || true
    fi
    cluster_stop
    if [ "$status" = 0 ] && [ -z "${FEBM_SLURM_TEST_DIR:-}" ]; then
        rm -rf "$WORK"
    elif [ "$status" != 0 ]; then
        say "FAILED (exit $status); everything is in $WORK"
        [ -f "$WORK/snakemake.log" ] && tail -40 "$WORK/snakemake.log"
        for log in "$WORK"/run/results/logs/slurm/*/*/*.log; do
            [ -f "$log" ] && grep -l -i error "$log" >/dev/null && { echo "--- $log"; tail -15 "$log"; }
        done
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

fail() {
    echo "error: $*" >&2
    exit 1
}

say "installing SLURM (if needed)"
cluster_install
say "starting a one-node cluster ($VARIANT) in $WORK/cluster"
cluster_start "$WORK/cluster" "$VARIANT"
sinfo -N -o "%N %P %c %m %G %l %t"

# The workflow in a folder of its own, as tests/test_workflow_smoke.py does: a clean results folder.
RUN=$WORK/run
mkdir -p "$RUN"
cp -r "$REPO/Snakefile" "$REPO/workflow" "$REPO/config" "$REPO/report" "$RUN/"
ln -s "$REPO/febm" "$RUN/febm"
# The smoke preset, cut to what CI time allows: one image dataset (CIFAR-10: data, Inception statistics,
# training, sampling, scores, Table 1) and one 1-D seed. Its CIFAR-10 f-EBM run is made long enough to
# be requeued after its first checkpoint (the smoke preset's 3 iterations end in a second): 100
# iterations, a checkpoint every 10.
cat >"$RUN/slurm-test.yaml" <<'EOF'
toy:
  seeds: [0]
images:
  datasets: [cifar10]
  cifar10:
    training: {iterations: 100, checkpoint_interval: 10, sample_interval: 50}
EOF
export PATH=$REPO/.venv/bin:$PATH # sbatch exports the environment: jobs find the same febm and Python
export FEBM_SLURM_PARTITION=cpu
unset FEBM_SLURM_ACCOUNT FEBM_SLURM_GPU_PARTITION

# First status check after 3 s instead of the plugin's 40 s (a cluster-friendly default): only speed.
SMOKE_ARGS=(--configfile config/smoke.yaml slurm-test.yaml --slurm-init-seconds-before-status-checks 3)

if [ "$VARIANT" = nogpu ]; then
    say "profiles/slurm on a cluster without GPUs must stop before submitting anything"
    set +e
    (cd "$RUN" && timeout 120 snakemake --profile "$REPO/profiles/slurm" "${SMOKE_ARGS[@]}") \
        >"$WORK/refused.log" 2>&1
    refused=$?
    set -e
    [ "$refused" != 0 ] || fail "profiles/slurm succeeded on a cluster without GPUs"
    [ "$refused" != 124 ] || fail "profiles/slurm hung on a cluster without GPUs (see $WORK/refused.log)"
    grep -q "asks for gpu=1" "$WORK/refused.log" && grep -q "profiles/slurm-cpu" "$WORK/refused.log" ||
        fail "the refusal does not name the GPU and profiles/slurm-cpu: $(tail -5 "$WORK/refused.log")"
    [ -z "$(squeue -h -o %i)" ] && ! grep -q "submitted with SLURM jobid" "$WORK/refused.log" ||
        fail "jobs were submitted before the refusal"
    grep -m1 "asks for gpu=1" "$WORK/refused.log"
    rm -rf "$RUN/.snakemake" "$RUN/results"
    PROFILE=$REPO/profiles/slurm-cpu
else
    export FEBM_SLURM_GPU_PARTITION=gpu
    PROFILE=$REPO/profiles/slurm
fi

say "snakemake --profile ${PROFILE#"$REPO/"} (smoke preset)"
(cd "$RUN" && exec snakemake --profile "$PROFILE" "${SMOKE_ARGS[@]}") >"$WORK/snakemake.log" 2>&1 &
SNAKEMAKE_PID=$!

# Requeue the long training job once it has written a checkpoint, while it is still running.
CHECKPOINTS=$RUN/resources/standin/checkpoints/cifar10/febm
requeued=""
while kill -0 "$SNAKEMAKE_PID" 2>/dev/null; do
    [ $((SECONDS - STARTED)) -lt "$RUN_LIMIT" ] || fail "the SLURM run took over ${RUN_LIMIT}s"
    if [ -z "$requeued" ] && [ -n "$(find "$CHECKPOINTS" -name 'state_*_rank0.pt' 2>/dev/null)" ]; then
        job=$(squeue -h -t RUNNING -o "%i %k" | awk '/train_images_wildcards_cifar10_febm/ {print $1}')
        [ -n "$job" ] || fail "the CIFAR-10 f-EBM training finished before it could be requeued"
        newest=$(find "$CHECKPOINTS" -name 'state_*_rank0.pt' | sort | tail -1)
        say "requeueing SLURM job $job (newest checkpoint: ${newest##*/})"
        scontrol requeue "$job"
        # SLURM holds a requeued job for about 2 minutes (BeginTime) once its processes have ended;
        # let it start again at once (an earlier update is overwritten by the requeue).
        for _ in $(seq 60); do
            [ "$(squeue -h -j "$job" -o %T)" = PENDING ] && break
            sleep 0.5
        done
        scontrol update JobId="$job" StartTime=now
        squeue -j "$job" -o "%i %T %r %S"
        requeued=$job
    fi
    sleep 0.5
done
SNAKEMAKE_PID_DONE=$SNAKEMAKE_PID
SNAKEMAKE_PID=""
wait "$SNAKEMAKE_PID_DONE" || fail "snakemake failed (see $WORK/snakemake.log)"
say "snakemake finished"

[ -s "$RUN/results/report/index.html" ] || fail "no report"
[ -n "$requeued" ] || fail "no training job was requeued"
jobs=$(grep -c "has been submitted with SLURM jobid" "$WORK/snakemake.log" || true)
[ "$jobs" -gt 0 ] || fail "no job went through sbatch"
grep -q "sbatch --test-only accepted all" "$WORK/snakemake.log" ||
    fail "the run did not test its submissions with sbatch --test-only before the first one"
resumed=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["resumed_from_iteration"])' \
    "$RUN/results/images/runs/cifar10/febm/jensen_shannon/seed0/metrics.json")
[ "$resumed" -gt 0 ] ||
    fail "the requeued training started over instead of resuming (resumed_from_iteration=0)"
say "OK: $jobs sbatch jobs, report written, requeued job $requeued resumed at iteration $resumed"
