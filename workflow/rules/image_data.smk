# Image data: CIFAR-10 and CelebA as prepared arrays, and the Inception weights for IS/FID.
# Downloads run on the machine that runs Snakemake (localrules in the Snakefile): compute nodes of
# clusters often have no internet. The smoke preset makes stand-ins in the real on-disk formats.

rule make_standins:
    """Smoke preset only: stand-in CIFAR-10 pickles / a folder of face-sized JPEGs, real layouts."""
    output:
        directory(f"{RAW_DATA_ROOT}/{{raw_layout}}"),
    params:
        kind=standin_kind_of,
    log:
        log_path("make_standins", "{raw_layout}"),
    wildcard_constraints:
        raw_layout=_alternatives(STANDIN_KIND_OF_LAYOUT),
    shell:
        "febm make-standins --kind {params.kind} --out {RAW_DATA_ROOT} > {log} 2>&1"


rule prepare_data:
    """Decode, crop and resize one dataset into a single uint8 array file (Section 6.2 setup)."""
    input:
        config=ancient(RESOLVED_CONFIG),
        raw=raw_data_of,
    output:
        PREPARED_DATA,
    params:
        settings=dataset_settings_key("prepare_data"),
        root=RAW_DATA_ROOT,
    threads: IMAGE_THREADS
    log:
        log_path("prepare_data", "{dataset}"),
    benchmark:
        benchmark_path("prepare_data", "{dataset}")
    shell:
        "febm prepare-data --config {input.config} --dataset {wildcards.dataset} --root {params.root}"
        " --out {output} > {log} 2>&1"


rule fetch_inception:
    """The pytorch-fid Inception weights (a randomly initialised stand-in under the smoke preset)."""
    output:
        INCEPTION_WEIGHTS,
    input:
        config=ancient(RESOLVED_CONFIG),
    params:
        standin="--standin" if STANDIN else "",
    log:
        log_path("fetch_inception", "inception"),
    shell:
        "febm fetch-inception --config {input.config} {params.standin} --out {output} > {log} 2>&1"
