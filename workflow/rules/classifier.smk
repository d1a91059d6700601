# Datasets without Inception statistics (Fashion-MNIST): a small CNN trained on the train split by its
# own rule, then frozen, scores every run's samples (classifier FID against the test split, conditional
# accuracy, the Inception-Score formula on its softmax) beside two reference rows: the train split
# (what perfect samples give) and uniform noise (what nothing gives).


rule train_classifier:
    """The frozen scorer of a classifier-scored dataset, with its test accuracy in a .json beside it."""
    input:
        config=ancient(RESOLVED_CONFIG),
        data=PREPARED_DATA,
    output:
        CLASSIFIER,
    params:
        settings=dataset_settings_key("train_classifier"),
    wildcard_constraints:
        dataset=_alternatives(CLASSIFIER_DATASETS),
    threads: IMAGE_THREADS
    log:
        log_path("train_classifier", "{dataset}"),
    benchmark:
        benchmark_path("train_classifier", "{dataset}")
    shell:
        "febm train-classifier --config {input.config} --data {input.data} --out {output} > {log} 2>&1"


rule classifier_score:
    """Classifier FID, conditional accuracy and Inception-Score formula of one run's samples."""
    input:
        config=ancient(RESOLVED_CONFIG),
        samples=IMAGE_SAMPLES,
        classifier=CLASSIFIER,
        data=PREPARED_DATA,
    output:
        IMAGE_SCORES,
    params:
        settings=settings_key("classifier_score"),
    wildcard_constraints:
        dataset=_alternatives(CLASSIFIER_DATASETS),
    threads: IMAGE_THREADS
    log:
        log_path("classifier_score", "{dataset}_{image_method}_{image_divergence}_seed{seed}"),
    benchmark:
        benchmark_path("classifier_score", "{dataset}_{image_method}_{image_divergence}_seed{seed}")
    shell:
        "febm classifier-score --config {input.config} --classifier {input.classifier} --data {input.data}"
        " --images {input.samples} --dataset {wildcards.dataset} --method {wildcards.image_method}"
        " --divergence {wildcards.image_divergence} --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule classifier_reference:
    """A reference row of the classifier-scored table: the train split or uniform noise."""
    input:
        config=ancient(RESOLVED_CONFIG),
        classifier=CLASSIFIER,
        data=PREPARED_DATA,
    output:
        CLASSIFIER_REFERENCE,
    params:
        settings=settings_key("classifier_score"),
    wildcard_constraints:
        dataset=_alternatives(CLASSIFIER_DATASETS),
        reference=_alternatives(CLASSIFIER_REFERENCES),
    log:
        log_path("classifier_reference", "{dataset}_{reference}"),
    shell:
        "febm classifier-score --config {input.config} --classifier {input.classifier} --data {input.data}"
        " --reference {wildcards.reference} --out {output} > {log} 2>&1"


rule classifier_table:
    """results/tables/<dataset>.csv: every method and divergence, mean and std over seeds, beside the
    reference rows."""
    input:
        config=ancient(RESOLVED_CONFIG),
        scores=lambda wildcards: classifier_score_files(wildcards.dataset),
        runs=lambda wildcards: image_run_files(f"{IMAGE_RUN_DIR}/metrics.json", datasets=[wildcards.dataset]),
    output:
        DATASET_TABLE,
    params:
        settings=settings_key("classifier_table"),
    wildcard_constraints:
        dataset=_alternatives(CLASSIFIER_DATASETS),
    log:
        log_path("tables", "{dataset}"),
    shell:
        "febm classifier-table --config {input.config} --scores {input.scores} --runs {input.runs}"
        " --out {output} > {log} 2>&1"


rule classifier_curve:
    """Sample quality against training iteration: every run's monitor.csv, mean over seeds."""
    input:
        config=ancient(RESOLVED_CONFIG),
        runs=lambda wildcards: image_run_files(f"{IMAGE_RUN_DIR}/monitor.csv", datasets=[wildcards.dataset]),
        references=lambda wildcards: [
            CLASSIFIER_REFERENCE.format(dataset=wildcards.dataset, reference=r) for r in CLASSIFIER_REFERENCES
        ],
    output:
        CLASSIFIER_CURVE,
    params:
        settings=settings_key("classifier_table"),
        run_dirs=lambda wildcards: image_run_files(IMAGE_RUN_DIR, datasets=[wildcards.dataset]),
    wildcard_constraints:
        dataset=_alternatives(CLASSIFIER_DATASETS),
    log:
        log_path("figures", "{dataset}_curve"),
    shell:
        "febm classifier-curve --config {input.config} --runs {params.run_dirs}"
        " --references {input.references} --out {output} > {log} 2>&1"
