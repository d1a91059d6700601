# Image training: one job per dataset x method x divergence x seed, one GPU per process (training.parallel:
# K torchrun processes for the original's global batch, or one).
# Resumable training state goes to resources/checkpoints/<run>/<resume key>, outside the declared
# outputs: Snakemake deletes a job's outputs before it starts and after it fails, so a retry (or a
# requeued SLURM job) resumes from there. The key (febm.runspec.resume_key) keeps runs with other
# training settings apart, and ignores the run length, so raising `iterations` continues a run.


rule gpu_check:
    """Stops paper-scale image training at once on a machine without a GPU (unless allowed)."""
    input:
        config=ancient(RESOLVED_CONFIG),
        script=GPU_CHECK_SCRIPT,
    output:
        GPU_CHECK,
    params:
        settings=settings_key("gpu_check"),
    resources:
        gpu=gpu_request("gpu_check"),
        mem_mb=mem_mb_request("gpu_check"),
        runtime=runtime_request("gpu_check"),
    priority: 100
    log:
        log_path("gpu_check", "gpu_check"),
    shell:
        "python {input.script} --config {input.config} --out {output} > {log} 2>&1"


# Best-IS checkpoint selection (evaluation.checkpoint_selection: best_is, docs/original-code.md section 6):
# training scores the replay buffer (Inception Score, or the classifier's IS formula on Fashion-MNIST) and
# keeps model_best.pt / replay_best.npz; evaluation (image_eval.smk) samples those instead of the final ones.
BEST_IS = config["evaluation"]["checkpoint_selection"] == "best_is"
BEST_IS_OUTPUTS = (
    {"model_best": f"{IMAGE_RUN_DIR}/model_best.pt", "replay_best": f"{IMAGE_RUN_DIR}/replay_best.npz"}
    if BEST_IS
    else {}
)
EVALUATED_MODEL = f"{IMAGE_RUN_DIR}/model_best.pt" if BEST_IS else f"{IMAGE_RUN_DIR}/model.pt"
EVALUATED_REPLAY = f"{IMAGE_RUN_DIR}/replay_best.npz" if BEST_IS else f"{IMAGE_RUN_DIR}/replay.npz"


def training_classifier_of(wildcards):
    """The classifier a run scores its buffer with: the monitor's, and best-IS selection's where the
    dataset has no Inception statistics."""
    if BEST_IS and wildcards.dataset in CLASSIFIER_DATASETS:
        return CLASSIFIER.format(dataset=wildcards.dataset)
    return monitor_classifier_of(wildcards)


def best_is_inception_weights_of(wildcards):
    """Inception weights: an input of training only for best-IS selection on an Inception dataset."""
    return INCEPTION_WEIGHTS if BEST_IS and wildcards.dataset in INCEPTION_DATASETS else []


def training_launcher(wildcards):
    """`febm`, or torchrun with K processes where training.parallel asks for them (global batch K x batch)."""
    parallel = IMAGES[wildcards.dataset]["training"]["parallel"]
    if parallel["launch"] == "torchrun" and parallel["processes"] > 1:
        return f"torchrun --standalone --nproc_per_node={parallel['processes']} -m febm"
    return "febm"


rule train_images:
    """f-EBM (Algorithm 1) or contrastive divergence on CIFAR-10 / CelebA 32x32."""
    input:
        config=ancient(RESOLVED_CONFIG),
        data=PREPARED_DATA,
        # Order only: a re-run of the check (new hardware, edited script) must not retrain anything.
        gpu_check=ancient(GPU_CHECK),
        # Classifier-scored datasets (Fashion-MNIST): the monitor scores the replay buffer with it.
        classifier=training_classifier_of,
        inception=best_is_inception_weights_of,
    output:
        model=f"{IMAGE_RUN_DIR}/model.pt",
        metrics=f"{IMAGE_RUN_DIR}/metrics.json",
        train_log=f"{IMAGE_RUN_DIR}/train_log.csv",
        samples=f"{IMAGE_RUN_DIR}/samples.png",
        monitor=f"{IMAGE_RUN_DIR}/monitor.csv",
        replay=f"{IMAGE_RUN_DIR}/replay.npz",
        **BEST_IS_OUTPUTS,
    params:
        settings=dataset_settings_key("train_images"),
        out_dir=IMAGE_RUN_DIR,
        checkpoint_dir=image_checkpoint_dir,
        launcher=training_launcher,
        classifier=lambda wildcards, input: f"--classifier {input.classifier}" if input.classifier else "",
        inception=lambda wildcards, input: (
            f"--inception-weights {input.inception}" if input.inception else ""
        ),
    threads: IMAGE_THREADS
    resources:
        gpu=gpu_request("train_images"),
        mem_mb=mem_mb_request("train_images"),
        runtime=runtime_request("train_images"),
    log:
        log_path("train_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    benchmark:
        benchmark_path("train_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}")
    shell:
        "{params.launcher} train-images --config {input.config} --dataset {wildcards.dataset}"
        " --method {wildcards.image_method} --divergence {wildcards.image_divergence}"
        " --seed {wildcards.seed} --data {input.data} --out-dir {params.out_dir}"
        " --checkpoint-dir {params.checkpoint_dir} {params.classifier} {params.inception} > {log} 2>&1"
