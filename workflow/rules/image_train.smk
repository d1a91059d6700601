# Image training: one job per dataset x method x divergence x seed, one GPU each.
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
        gpu=1,
    priority: 100
    log:
        log_path("gpu_check", "gpu_check"),
    shell:
        "python {input.script} --config {input.config} --out {output} > {log} 2>&1"


rule train_images:
    """f-EBM (Algorithm 1) or contrastive divergence on CIFAR-10 / CelebA 32x32."""
    input:
        config=ancient(RESOLVED_CONFIG),
        data=PREPARED_DATA,
        # Order only: a re-run of the check (new hardware, edited script) must not retrain anything.
        gpu_check=ancient(GPU_CHECK),
        # Classifier-scored datasets (Fashion-MNIST): the monitor scores the replay buffer with it.
        classifier=monitor_classifier_of,
    output:
        model=f"{IMAGE_RUN_DIR}/model.pt",
        metrics=f"{IMAGE_RUN_DIR}/metrics.json",
        train_log=f"{IMAGE_RUN_DIR}/train_log.csv",
        samples=f"{IMAGE_RUN_DIR}/samples.png",
        monitor=f"{IMAGE_RUN_DIR}/monitor.csv",
        replay=f"{IMAGE_RUN_DIR}/replay.npz",
    params:
        settings=dataset_settings_key("train_images"),
        out_dir=IMAGE_RUN_DIR,
        checkpoint_dir=image_checkpoint_dir,
        classifier=lambda wildcards, input: f"--classifier {input.classifier}" if input.classifier else "",
    threads: IMAGE_THREADS
    resources:
        gpu=1,
    log:
        log_path("train_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    benchmark:
        benchmark_path("train_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}")
    shell:
        "febm train-images --config {input.config} --dataset {wildcards.dataset}"
        " --method {wildcards.image_method} --divergence {wildcards.image_divergence}"
        " --seed {wildcards.seed} --data {input.data} --out-dir {params.out_dir}"
        " --checkpoint-dir {params.checkpoint_dir} {params.classifier} > {log} 2>&1"
