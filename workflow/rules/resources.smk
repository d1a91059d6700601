# ---------------------------------------------------------------------------------------------
# Cluster resources: what a job asks the scheduler for (profiles/slurm), by preset, so a smoke job
# does not queue for a 32 GB node. (mem_mb, runtime in minutes) for attempt 1; a retry (attempt 2, 3)
# asks for that many times more, never beyond the largest node / longest time limit the cluster has.
# Measured with Snakemake's benchmarks (max_rss and wall time, results/benchmarks/) on 2 shared CPU
# cores: smoke, every job <= 1.3 GB and <= 35 s; laptop, train_images 1.3 GB and <= 25 min,
# sample_images 1.1 GB and 5 min. Paper memory is measured on CPU, where the activations are host memory
# too, so it bounds a GPU job's host memory from above; the request adds ~2 GB for a CUDA context (host
# memory only; the GPU's own memory is not a SLURM request). Training: benchmarks/paper_memory.py (below).
# Evaluation: `python benchmarks/paper_memory.py --job sample|score|fid_stats` (the rules' febm commands
# at the paper's sizes, random weights and images, only compute cut; AMD EPYC, 2 torch threads), peak
# RSS: sample_images 3.6-3.9 GB (50,000 samples, paper protocol; 1-2 steps per call, 3-6 calls: no trend),
# score_images 7.9-8.2 GB (50,000 samples, 1-4 Inception batches of 200), fid_stats 8.9 GB (60,000
# images, train+test; 3 batches); the Inception activations of a batch are most of the last two. The
# other figures (quick: CIFAR-10, 32 filters; paper runtimes) are estimates.
# Rules not listed (the 1-D study, the classifier, figures) get the profile's default-resources.
JOB_RESOURCES = {
    "smoke": {
        "gpu_check": (2000, 10),
        "train_images": (2000, 15),
        "sample_images": (2000, 15),
        "score_images": (2000, 15),
        "fid_stats": (2000, 15),
    },
    "laptop": {
        "gpu_check": (2000, 10),
        "train_images": (3000, 90),
        "sample_images": (2000, 30),
        "score_images": (4000, 30),
        "fid_stats": (4000, 30),
    },
    "quick": {
        "gpu_check": (2000, 10),
        "train_images": (6000, 180),
        "sample_images": (4000, 60),
        "score_images": (6000, 60),
        "fid_stats": (6000, 60),
    },
    "paper": {
        "gpu_check": (2000, 10),
        # per process of the global batch (x 4): measured on CPU, where activations are host memory too
        # (benchmarks/paper_memory.py): 4.4 GB per torchrun process, 13.3 GB for one process with batch
        # 512 and 40,000 chains; a GPU job keeps them on the GPU but adds its CUDA context. 4 x 6 GB covers
        # both. ~80,000 iterations; a retry resumes from the checkpoint.
        "train_images": (6000, 1440),
        # measured peak (above) + 2 GB, rounded up to the GB: 3.9 -> 6, 8.2 -> 11, 8.9 -> 11
        "sample_images": (6000, 720),  # 50,000 samples with the paper's schedule
        "score_images": (11000, 120),
        "fid_stats": (11000, 120),
    },
}
# The rules whose jobs ask for a GPU (`gpu=1`, i.e. `sbatch --gpus=1`); profiles/slurm-cpu sets 0.
GPU_RULES = ("gpu_check", "train_images", "sample_images", "score_images", "fid_stats")
CPU_PROFILE_HINT = "use `--profile profiles/slurm-cpu` to run the image jobs on CPU nodes"


def _on_slurm():
    """True in the Snakemake that submits SLURM jobs (not inside a job, not in a dry run)."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name == "slurm"


def _slurm_minutes(limit):
    """sinfo's time limit ('infinite', '30:00', '2:00:00', '1-12:00:00') in minutes; None if unlimited."""
    if limit in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    days, _, clock = limit.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    if len(parts) == 1:  # bare minutes
        parts = [0, parts[0], 0]
    hours, minutes, seconds = [0] * (3 - len(parts)) + parts  # MM:SS or HH:MM:SS
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


_SLURM_NODES = []


def slurm_nodes():
    """One (partition, gres, memory MB, time limit minutes or None) per node and partition, from sinfo."""
    import subprocess

    if not _SLURM_NODES:
        try:
            listing = subprocess.run(
                ["sinfo", "--noheader", "--Node", "--format=%R|%G|%m|%l"],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as error:
            raise WorkflowError(
                f"cannot list the cluster's nodes with sinfo ({error}); is SLURM reachable from here?"
            )
        for line in listing.splitlines():
            partition, gres, memory, limit = line.split("|")
            _SLURM_NODES.append((partition, gres, int(memory.rstrip("+") or 0), _slurm_minutes(limit)))
    return _SLURM_NODES


def _target_nodes(rule):
    """The nodes a job of `rule` can land on: its partition from the profile's variables, else all."""
    variables = ["FEBM_SLURM_PARTITION"]
    if rule in GPU_RULES:
        variables.insert(0, "FEBM_SLURM_GPU_PARTITION")
    nodes = slurm_nodes()
    for variable in variables:
        partition = os.environ.get(variable, "")
        if partition:
            chosen = [node for node in nodes if node[0] == partition]
            if not chosen:
                known = ", ".join(sorted({node[0] for node in nodes}))
                raise WorkflowError(
                    f"{rule}: partition {partition!r} (from {variable}) is not on this cluster; "
                    f"sinfo lists: {known}. Set {variable} to one of them or unset it"
                )
            return chosen, f"partition {partition!r}"
    return nodes, "any partition"


def training_processes(rule, wildcards, launch=("torchrun",)):
    """K (training.parallel.processes) for a training job launched one of the `launch` ways, else 1:
    the GPUs a torchrun job asks for; with both launches, the processes' worth of host memory."""
    if rule != "train_images":
        return 1
    parallel = IMAGES[wildcards.dataset]["training"]["parallel"]
    return parallel["processes"] if parallel["launch"] in launch else 1


def gpu_request(rule):
    """`gpu=1` for `rule` (K for a torchrun training job: one GPU per process); on SLURM, stops before
    submitting when no node it can use has a GPU."""

    def gpus(wildcards):
        if _on_slurm():
            nodes, where = _target_nodes(rule)
            if not any("gpu" in node[1] for node in nodes):
                raise WorkflowError(
                    f"{rule} asks for gpu=1 (sbatch --gpus=1), but no node in {where} of this cluster "
                    f"has a GPU (sinfo GRES: {', '.join(sorted({node[1] for node in nodes}))}); "
                    f"set FEBM_SLURM_GPU_PARTITION to a partition with GPUs, or {CPU_PROFILE_HINT}"
                )
        return training_processes(rule, wildcards)

    return gpus


def _request(rule, index):
    return JOB_RESOURCES[config["preset"]][rule][index]


def mem_mb_request(rule):
    """The preset's memory for `rule` times the attempt; on SLURM at most the largest usable node's."""

    def mem_mb(wildcards, attempt):
        # per process (train_images: K processes, or K processes' worth of batch and chains in one)
        wanted = _request(rule, 0) * training_processes(rule, wildcards, ("torchrun", "one_process"))
        if not _on_slurm():
            return wanted * attempt
        nodes, where = _target_nodes(rule)
        largest = max(node[2] for node in nodes)
        if wanted > largest:
            raise WorkflowError(
                f"{rule} needs mem_mb={wanted} at preset {config['preset']!r}, but the largest node in "
                f"{where} has {largest} MB; choose a partition with bigger nodes (FEBM_SLURM_PARTITION / "
                f"FEBM_SLURM_GPU_PARTITION), a smaller preset, or --set-resources {rule}:mem_mb=N to insist"
            )
        return min(wanted * attempt, largest)

    return mem_mb


def runtime_request(rule):
    """The preset's time limit (minutes) times the attempt; on SLURM at most the partition's limit (a
    training job cut there resumes from its checkpoint when retried)."""

    def runtime(wildcards, attempt):
        wanted = _request(rule, 1) * attempt
        if not _on_slurm():
            return wanted
        limits = [node[3] for node in _target_nodes(rule)[0]]
        return wanted if None in limits else min(wanted, max(limits))

    return runtime


# What sbatch says when it refuses a job, and the setting that decides it (first match wins).
SBATCH_REFUSALS = (
    ("qos", "the QOS (its job-size, time or submit limits): ask your admins which QOS fits, or ask for "
     "less with --set-resources RULE:runtime=MINUTES / RULE:mem_mb=MB"),
    ("invalid account", "the account: set FEBM_SLURM_ACCOUNT to one you may charge "
     "(`sacctmgr show associations user=$USER format=account,partition,qos`)"),
    ("time limit", "the time limit: --set-resources RULE:runtime=MINUTES, or a partition with a longer "
     "limit (FEBM_SLURM_PARTITION / FEBM_SLURM_GPU_PARTITION)"),
    ("partition", "the partition: set FEBM_SLURM_PARTITION / FEBM_SLURM_GPU_PARTITION to one `sinfo` lists"),
    ("node configuration", "the node request (memory or GPUs): a partition whose nodes have them, "
     f"--set-resources RULE:mem_mb=MB, or {CPU_PROFILE_HINT}"),
    ("memory", "the memory: --set-resources RULE:mem_mb=MB or a partition with bigger nodes"),
)  # fmt: skip


def sbatch_test_arguments(rule, mem_mb, runtime, gpus):
    """The sbatch options a job of `rule` is submitted with (account, partition, time, memory, GPUs)."""
    variables = ["FEBM_SLURM_GPU_PARTITION", "FEBM_SLURM_PARTITION"] if rule in GPU_RULES else ["FEBM_SLURM_PARTITION"]
    partition = next((os.environ[name] for name in variables if os.environ.get(name)), "")
    arguments = [f"--time={runtime}", f"--mem={mem_mb}"]
    if os.environ.get("FEBM_SLURM_ACCOUNT"):
        arguments.append(f"--account={os.environ['FEBM_SLURM_ACCOUNT']}")
    if partition:
        arguments.append(f"--partition={partition}")
    if gpus:
        arguments.append(f"--gpus={gpus}")
    return arguments


def check_submission(rule, arguments):
    """`sbatch --test-only` with a job's options: a refusal stops the run before the first submission,
    naming the refused resource, instead of failing each job and retrying what cannot succeed."""
    import subprocess

    command = ["sbatch", "--test-only", "--job-name=febm-submission-check", "--output=/dev/null", *arguments]
    try:
        result = subprocess.run([*command, "--wrap=true"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise WorkflowError(f"cannot test a submission with sbatch --test-only ({error}); is SLURM reachable?")
    if result.returncode == 0:
        return
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    message = (lines[-1] if lines else f"exit status {result.returncode}").removeprefix("sbatch: error: ")
    message = message.removeprefix("Batch job submission failed: ")
    lowered = message.lower()
    advice = next((text for key, text in SBATCH_REFUSALS if key in lowered), "see the message")
    raise WorkflowError(
        f"the cluster refuses {rule}'s jobs (sbatch {' '.join(arguments)}): {message}. Refused: {advice}. "
        "Nothing was submitted"
    )


onstart:
    # Before the first sbatch: one test submission per distinct request the run will make (each rule's
    # first job, its resources as evaluated for this preset, profile and cluster).
    if _on_slurm():
        probes, seen = {}, set()
        for job in workflow.dag.needrun_jobs():
            if job.is_local or job.rule.name in seen:
                continue
            seen.add(job.rule.name)
            resources = job.resources
            arguments = sbatch_test_arguments(
                job.rule.name, resources.get("mem_mb", 2000), resources.get("runtime", 30), resources.get("gpu", 0)
            )
            probes.setdefault(tuple(arguments), (job.rule.name, arguments))
        for rule, arguments in probes.values():
            check_submission(rule, arguments)
        print(f"febm: sbatch --test-only accepted all {len(probes)} kinds of job of this run", file=sys.stderr)
