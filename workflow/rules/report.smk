# The HTML report: one self-contained results/report/index.html from the tables, figures, per-run
# metrics and benchmark files. A study that is switched off is shown as "not run".


def report_templates():
    return sorted(
        os.path.join(REPORT_TEMPLATES, name)
        for name in os.listdir(os.path.join(workflow.basedir, "report"))
        if not name.startswith(".")
    )


def toy_benchmarks():
    if not TOY_ENABLED:
        return []
    divergences = toy_optimum_divergences()
    files = [benchmark_path("toy_optimum", divergence) for divergence in divergences]
    files += [benchmark_path("toy_train", f"{m}_{d}_seed{s}") for m, d, s in toy_runs()]
    files += [benchmark_path("toy_convergence", divergence) for divergence in TOY_DIVERGENCES]
    files += [benchmark_path("toy_stability", divergence) for divergence in TOY_DIVERGENCES]
    return files


def image_benchmarks():
    if not IMAGES_ENABLED:
        return []
    files = [benchmark_path("prepare_data", dataset) for dataset in IMAGE_DATASETS]
    for dataset in IMAGE_DATASETS:
        files.append(benchmark_path("fid_stats" if dataset in TABLE_OF_DATASET else "train_classifier", dataset))
    for dataset, method, divergence, seed in image_runs():
        name = f"{dataset}_{method}_{divergence}_seed{seed}"
        scoring = "score_images" if dataset in TABLE_OF_DATASET else "classifier_score"
        files += [benchmark_path(stage, name) for stage in ("train_images", "sample_images", scoring)]
    return files


def report_inputs():
    names = ("tables", "figures", "metrics", "samples", "stability", "gpu_check", "curves")
    inputs = {name: [] for name in names}  # every key, possibly empty: the report rule passes each as --<key>
    if TOY_ENABLED:
        inputs["tables"].append(TABLE.format(table=5))
        inputs["figures"] += expand(FIGURE_PNG, figure=TOY_FIGURES)
        inputs["metrics"] += toy_run_metrics()
        inputs["stability"] += toy_stability_files()
    if IMAGES_ENABLED:
        inputs["tables"] += image_tables()
        inputs["metrics"] += image_run_files(f"{IMAGE_RUN_DIR}/metrics.json") + image_run_files(IMAGE_SCORES)
        inputs["gpu_check"].append(GPU_CHECK)
        inputs["curves"] = classifier_curves()  # empty when no classifier-scored run is monitored
        if config["report"]["sample_grids"]:
            inputs["samples"] += image_run_files(IMAGE_GRID)
    return inputs


def report_option(flag, files):
    return f"{flag} {' '.join(files)}" if files else ""

REPORT_INPUTS = report_inputs()


rule report:
    """Render report/*.html.j2 into results/report/index.html (figures embedded as base64)."""
    input:
        config=ancient(RESOLVED_CONFIG),
        templates=report_templates(),
        paper=PAPER_RESULTS,
        benchmarks=toy_benchmarks() + image_benchmarks(),
        **REPORT_INPUTS,
    output:
        REPORT_HTML,
    params:
        settings=CONFIG_HASH,
        templates=REPORT_TEMPLATES,
        options=" ".join(
            report_option(f"--{name.replace('_', '-')}", files) for name, files in REPORT_INPUTS.items()
        ),
    log:
        log_path("report", "report"),
    shell:
        "febm report --config {input.config} --templates {params.templates} --paper {input.paper}"
        " {params.options} --benchmarks {input.benchmarks} --out {output} > {log} 2>&1"
