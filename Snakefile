# f-EBM reproduction workflow: the 1-D study (Table 5, Figures 1-4), CIFAR-10 and CelebA (Tables 1-2)
# and the HTML report.
#
#   snakemake --cores all                                   # the paper (config/config.yaml)
#   snakemake --cores all --configfile config/quick.yaml    # a CPU laptop: minutes to an hour
#   snakemake --cores all --configfile config/smoke.yaml    # seconds to minutes, stand-in data, offline
#   snakemake --cores all table5                            # one table and only what it needs
#   snakemake --list-target-rules                           # every named target
#
# Layout: results/ holds everything the workflow produces (results/logs/ and results/benchmarks/ too),
# resources/ holds downloads, caches and resumable training checkpoints. Each rule runs one `febm`
# command with explicit paths; `snakemake -p` prints it, so every step also runs by hand.

import copy
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


# The paper's grid and hyper-parameters; presets overlay it (`--configfile config/quick.yaml`).
# Located next to this file, so `--directory` may point anywhere.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# One schema holds every default: the febm command line validates with the same file
# (workflow/schemas/config.schema.yaml is a link to it, where Snakemake users look for it).
CONFIG_SCHEMA = "febm/schemas/config.schema.yaml"

try:
    import febm.config
except ImportError:
    raise WorkflowError(
        f"the febm package is not importable from {sys.executable}; "
        "run `make setup` and call .venv/bin/snakemake (or activate .venv)"
    )

try:
    validate(config, CONFIG_SCHEMA)
except WorkflowError:
    # Snakemake's message is long; the CLI's one-line form names the key first.
    febm.config.validate(copy.deepcopy(config))
    raise
febm.config.check_semantics(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/image_data.smk"
include: "workflow/rules/image_train.smk"
include: "workflow/rules/image_eval.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/tables_figures.smk"
include: "workflow/rules/report.smk"


# Cheap aggregation and downloads run where Snakemake runs, not as cluster jobs (compute nodes often
# have no internet; a queued job for a 1-second table wastes minutes).
localrules:
    all,
    toy,
    images,
    appendix_figures,
    downloads,
    table1,
    table2,
    table5,
    figure1,
    figure2,
    figure3,
    figure4,
    toy_table,
    toy_figure,
    image_table,
    classifier_table,
    report,
    make_standins,
    prepare_data,
    fetch_inception,


# ---- Named targets (`snakemake --list-target-rules`) ----------------------------------------------
rule all:
    """Every table, figure and the report for the studies switched on in the config."""
    default_target: True
    input:
        toy_products(),
        image_products(),
        REPORT_HTML,


rule toy:
    """The 1-D study only: Table 5, Figures 1-4 and the stability check (and toy_check: no run failed)."""
    input:
        TABLE.format(table=5),
        toy_figures(),
        toy_stability_files(),
        TOY_CHECK,


rule images:
    """The image study only: Tables 1 and 2 for the configured datasets."""
    input:
        image_tables(),


rule appendix_figures:
    """Appendix G figures (sampling process, denoising, inpainting, nearest neighbours) of every f-EBM run."""
    input:
        appendix_figures(),


rule downloads:
    """Fetch the datasets and Inception weights (run on a machine with internet before a cluster run)."""
    input:
        expand(PREPARED_DATA, dataset=IMAGE_DATASETS),
        INCEPTION_WEIGHTS,


rule table1:
    """Table 1: CIFAR-10 class-conditional, Inception Score and FID."""
    input:
        TABLE.format(table=1),


rule table2:
    """Table 2: CelebA 32x32 unconditional, FID."""
    input:
        TABLE.format(table=2),


rule table5:
    """Table 5: the 1-D mixture, learned (mu, sigma) per divergence against the exact optimum (then toy_check:
    the table is written even when a run failed, and the workflow still exits non-zero)."""
    input:
        TABLE.format(table=5),
        TOY_CHECK,


rule figure1:
    """Figure 1: the learned Gaussian for each divergence over the data mixture."""
    input:
        expand([FIGURE_PNG, FIGURE_PDF], figure=1),


rule figure2:
    """Figure 2: rejection sampling with the learned density ratio."""
    input:
        expand([FIGURE_PNG, FIGURE_PDF], figure=2),


rule figure3:
    """Figure 3: the learned density ratio against the true one."""
    input:
        expand([FIGURE_PNG, FIGURE_PDF], figure=3),


rule figure4:
    """Figure 4: convergence from several initialisations."""
    input:
        expand([FIGURE_PNG, FIGURE_PDF], figure=4),
