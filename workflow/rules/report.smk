# The HTML report: one self-contained results/report/index.html from the tables, figures, per-run
# metrics and benchmark files. A study that is switched off is shown as "not run".


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
