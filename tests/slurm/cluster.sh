# A throw-away one-node SLURM cluster for the CI test, without systemd. Source this file, then:
#   cluster_install                       # Debian packages (root, apt-get)
#   cluster_start DIR [gpu|nogpu]         # DIR/slurm.conf (+ gres.conf); starts munged, slurmctld, slurmd
#   cluster_stop                          # stops exactly the daemons cluster_start started, by PID
# Every state, spool, log and pid file lives under DIR. The config must also be at the default path,
# /etc/slurm/slurm.conf, as on a real cluster: the Snakemake jobstep plugin runs each rule through
# `srun` with the SLURM_* variables (SLURM_CONF too) removed, so srun inside a job finds no other.
# cluster_start links /etc/slurm/{slurm,gres}.conf to DIR (refusing to replace a config it did not
# write) and cluster_stop removes the links.
#
# Why these settings (SLURM 22.05 as Debian 12 packages it, inside a container):
# - proctrack/linuxproc and task/none: no cgroup hierarchy to manage in a container.
# - SlurmUser=root: the daemons run as the user who started them, so no chown of the folders.
# - SlurmdParameters=config_overrides: the node line below is trusted over what slurmd detects.
# - MinJobAge=300: finished jobs stay visible to squeue for 5 minutes, which is what the Snakemake plugin
#   needs to read job states with squeue when there is no accounting database (see profiles/slurm).
# - no accounting (accounting_storage/none): sacct then fails, the state of most small clusters.
# - two fake GPUs (two image jobs at once, one per core): GresTypes=gpu, Gres=gpu:2 on the node, and one
#   gres.conf line per GPU with a device file (/dev/null, /dev/zero). Without File= slurmd drops the
#   GPUs and the node becomes INVAL; with it, jobs asking --gpus=1 start and see CUDA_VISIBLE_DEVICES=0
#   or 1 (torch then finds no CUDA and the image jobs run on CPU).

CLUSTER_PIDS=()
CLUSTER_LINKS=()
CLUSTER_MARKER="# written by febm tests/slurm/cluster.sh"

cluster_install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: SLURM is not installed; run as root on Debian/Ubuntu (apt-get) or install" \
            "slurmctld slurmd slurm-client munge yourself" >&2
        return 1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
}

# Reuse a munged that already answers (a developer machine), else start our own.
_cluster_start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge: /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/febm-ci.pid"
    for _ in $(seq 50); do
        [ -s /run/munge/febm-ci.pid ] && break
        sleep 0.1
    done
    CLUSTER_PIDS+=("$(cat /run/munge/febm-ci.pid)")
}

_cluster_wait_pidfile() {
    local file=$1 name=$2
    for _ in $(seq 100); do
        [ -s "$file" ] && return 0
        sleep 0.1
    done
    echo "error: $name did not start; its log:" >&2
    tail -20 "${file%.pid}.log" >&2 || true
    return 1
}

# Link TARGET to SOURCE unless TARGET is a config somebody else wrote.
_cluster_link() {
    local source=$1 target=$2
    if [ -e "$target" ] || [ -L "$target" ]; then
        if [ -e "$target" ] && ! [ -L "$target" ]; then
            echo "error: $target exists and was not written by this test; move it away first" >&2
            return 1
        fi
        if [ -e "$target" ] && [ "${target##*/}" = slurm.conf ] &&
            ! grep -qF "$CLUSTER_MARKER" "$target"; then
            echo "error: $target links to a config this test did not write; remove the link first" >&2
            return 1
        fi
        local other
        other=$(dirname "$(readlink "$target")")
        if [ "$other" != "$(dirname "$source")" ] && [ -s "$other/slurmctld.pid" ] &&
            kill -0 "$(cat "$other/slurmctld.pid")" 2>/dev/null; then
            echo "error: another test cluster is running from $other; wait for it to end" >&2
            return 1
        fi
    fi
    mkdir -p "$(dirname "$target")"
    ln -sfn "$source" "$target"
    CLUSTER_LINKS+=("$target")
}

cluster_start() {
    local dir=$1 gpu=${2:-gpu}
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # 90 % of the machine's memory: jobs asking more are rejected at submission, as on a real node.
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$dir/state" "$dir/spool"
    dir=$(cd "$dir" && pwd)
    CLUSTER_DIR=$dir
    local gres_line="" node_gres=""
    if [ "$gpu" = gpu ]; then
        gres_line="GresTypes=gpu"
        node_gres="Gres=gpu:2"
        printf "NodeName=%s Name=gpu File=%s\n" "$host" /dev/null "$host" /dev/zero >"$dir/gres.conf"
    fi
    cat >"$dir/slurm.conf" <<EOF
$CLUSTER_MARKER
ClusterName=febmci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${FEBM_CI_SLURMCTLD_PORT:-6817}
SlurmdPort=${FEBM_CI_SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
$gres_line
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $node_gres State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$dir/slurm.conf
    _cluster_link "$dir/slurm.conf" /etc/slurm/slurm.conf
    if [ -f "$dir/gres.conf" ]; then
        _cluster_link "$dir/gres.conf" /etc/slurm/gres.conf
    elif [ -L /etc/slurm/gres.conf ] && ! grep -q "^NodeName=" /etc/slurm/gres.conf 2>/dev/null; then
        rm -f /etc/slurm/gres.conf # a dangling link from an earlier run
    fi
    _cluster_start_munge
    /usr/sbin/slurmctld
    _cluster_wait_pidfile "$dir/slurmctld.pid" slurmctld
    CLUSTER_PIDS+=("$(cat "$dir/slurmctld.pid")")
    /usr/sbin/slurmd
    _cluster_wait_pidfile "$dir/slurmd.pid" slurmd
    CLUSTER_PIDS+=("$(cat "$dir/slurmd.pid")")
    # The node answers once slurmd has registered: wait for it to become idle.
    for _ in $(seq 60); do
        if sinfo -h -N -o %t 2>/dev/null | grep -q '^idle'; then
            return 0
        fi
        sleep 1
    done
    echo "error: the node did not become idle:" >&2
    sinfo -N -l >&2 || true
    tail -20 "$dir/slurmd.log" "$dir/slurmctld.log" >&2 || true
    return 1
}

# Stop what we started, newest first (slurmd, slurmctld, munged), by PID; wait for each to exit.
cluster_stop() {
    local index pid link
    if [ -n "${SLURM_CONF:-}" ] && [ "${#CLUSTER_PIDS[@]}" -gt 0 ]; then
        scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    fi
    for ((index = ${#CLUSTER_PIDS[@]} - 1; index >= 0; index--)); do
        pid=${CLUSTER_PIDS[index]}
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
    for link in "${CLUSTER_LINKS[@]}"; do
        # only our own links: another cluster may have replaced them since
        if [ "$(readlink "$link")" = "$CLUSTER_DIR/${link##*/}" ]; then rm -f "$link"; fi
    done
    CLUSTER_LINKS=()
}
