# Image evaluation: reference statistics per dataset, samples and Inception Score / FID per run.


rule fid_stats:
    """Inception pool3 mean and covariance of the reference images, once per dataset."""
    input:
        config=ancient(RESOLVED_CONFIG),
        data=PREPARED_DATA,
        weights=INCEPTION_WEIGHTS,
    output:
        FID_STATS,
    params:
        settings=dataset_settings_key("fid_stats"),
    threads: IMAGE_THREADS
    resources:
        gpu=gpu_request("fid_stats"),
        mem_mb=mem_mb_request("fid_stats"),
        runtime=runtime_request("fid_stats"),
    wildcard_constraints:
        dataset=_alternatives(INCEPTION_DATASETS),
    log:
        log_path("fid_stats", "{dataset}"),
    benchmark:
        benchmark_path("fid_stats", "{dataset}")
    shell:
        "febm fid-stats --config {input.config} --dataset {wildcards.dataset} --data {input.data}"
        " --weights {input.weights} --out {output} > {log} 2>&1"


rule sample_images:
    """Draw the evaluation samples of one trained energy network with Langevin dynamics: model.pt, or
    model_best.pt (and its chains) with evaluation.checkpoint_selection: best_is."""
    input:
        config=ancient(RESOLVED_CONFIG),
        model=EVALUATED_MODEL,
        replay=EVALUATED_REPLAY,
    output:
        IMAGE_SAMPLES,
    params:
        settings=settings_key("sample_images"),
        num_samples=config["evaluation"]["num_samples"],
        protocol=config["evaluation"]["protocol"],
        # Only the replay protocol reads the run's chains (final, or those of the best-IS checkpoint).
        replay=lambda wildcards, input: (
            f"--replay {input.replay}" if config["evaluation"]["protocol"] == "replay" else ""
        ),
    threads: IMAGE_THREADS
    resources:
        gpu=gpu_request("sample_images"),
        mem_mb=mem_mb_request("sample_images"),
        runtime=runtime_request("sample_images"),
    log:
        log_path("sample_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    benchmark:
        benchmark_path("sample_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}")
    shell:
        "febm sample --config {input.config} --checkpoint {input.model} --n {params.num_samples}"
        " --protocol {params.protocol} {params.replay} --out {output} > {log} 2>&1"


rule score_images:
    """Inception Score and FID of one run's samples against the dataset's reference statistics."""
    input:
        config=ancient(RESOLVED_CONFIG),
        samples=IMAGE_SAMPLES,
        ref_stats=FID_STATS,
        weights=INCEPTION_WEIGHTS,
    output:
        IMAGE_SCORES,
    params:
        settings=settings_key("score_images"),
    threads: IMAGE_THREADS
    resources:
        gpu=gpu_request("score_images"),
        mem_mb=mem_mb_request("score_images"),
        runtime=runtime_request("score_images"),
    wildcard_constraints:
        dataset=_alternatives(INCEPTION_DATASETS),
    log:
        log_path("score_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    benchmark:
        benchmark_path("score_images", "{dataset}_{image_method}_{image_divergence}_seed{seed}")
    shell:
        "febm score --config {input.config} --images {input.samples} --ref-stats {input.ref_stats}"
        " --weights {input.weights} --dataset {wildcards.dataset} --method {wildcards.image_method}"
        " --divergence {wildcards.image_divergence} --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule sample_grid:
    """The uncurated grid of one run's evaluation samples (Appendix G.2 / G.7)."""
    input:
        config=ancient(RESOLVED_CONFIG),
        samples=IMAGE_SAMPLES,
    output:
        IMAGE_GRID,
    params:
        settings=settings_key("sample_grid"),
    log:
        log_path("sample_grid", "{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    shell:
        "febm image-figure --figure grid --config {input.config} --images {input.samples}"
        " --out {output} > {log} 2>&1"


rule appendix_figure:
    """Appendix G figures of one run: sampling process, denoising, inpainting, nearest neighbours."""
    input:
        config=ancient(RESOLVED_CONFIG),
        model=f"{IMAGE_RUN_DIR}/model.pt",
        samples=IMAGE_SAMPLES,
        data=PREPARED_DATA,
    output:
        APPENDIX_FIGURE,
    params:
        settings=settings_key("appendix_figure"),
    wildcard_constraints:
        kind="process|denoise|inpaint|neighbours",
    log:
        log_path("appendix_figure", "{kind}_{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    shell:
        "febm image-figure --figure {wildcards.kind} --config {input.config} --checkpoint {input.model}"
        " --images {input.samples} --data {input.data} --out {output} > {log} 2>&1"
