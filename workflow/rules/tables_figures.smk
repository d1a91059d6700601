# Aggregation: the paper's tables and figures, each from every run it summarises.


rule toy_table:
    """Table 5 (Appendix F.1): learned (mu, sigma) per divergence next to the exact optimum and the paper."""
    input:
        config=ancient(RESOLVED_CONFIG),
        optima=toy_optima(),
        runs=toy_run_metrics(),
        paper=PAPER_RESULTS,
    output:
        TABLE.format(table=5),
    params:
        settings=settings_key("toy_table"),
        run_dirs=toy_run_dirs(),
    log:
        log_path("tables", "table5"),
    shell:
        "febm toy-table --config {input.config} --optima {input.optima} --runs {params.run_dirs}"
        " --paper {input.paper} --out {output} > {log} 2>&1"


rule toy_figure:
    """Figures 1-4 of the 1-D study, as PNG and PDF."""
    input:
        config=ancient(RESOLVED_CONFIG),
        optima=toy_optima(),
        runs=toy_run_metrics(),
        convergence=toy_figure_convergence_inputs,
    output:
        png=FIGURE_PNG,
        pdf=FIGURE_PDF,
    params:
        settings=settings_key("toy_figure"),
        run_dirs=toy_run_dirs(),
        convergence=toy_figure_convergence_args,
    log:
        log_path("figures", "figure{figure}"),
    shell:
        "febm toy-figure --figure {wildcards.figure} --config {input.config} --optima {input.optima}"
        " --runs {params.run_dirs} {params.convergence} --out {output.png} > {log} 2>&1"


rule image_table:
    """Table 1 (CIFAR-10: Inception Score and FID) and Table 2 (CelebA 32x32: FID) with the paper's numbers."""
    input:
        config=ancient(RESOLVED_CONFIG),
        scores=image_scores_of_table,
        paper=PAPER_RESULTS,
    output:
        TABLE,
    params:
        settings=settings_key("image_table"),
    wildcard_constraints:
        table="[12]",
    log:
        log_path("tables", "table{table}"),
    shell:
        "febm image-table --table {wildcards.table} --config {input.config} --scores {input.scores}"
        " --paper {input.paper} --out {output} > {log} 2>&1"
