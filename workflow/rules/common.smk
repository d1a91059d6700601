# Helpers shared by every rule module: the resolved config, settings digests, the grid and paths.
# Named functions instead of lambdas, so rules read as plain lists of files.

import json
import re

import febm.config
import febm.io
import febm.runspec


# `shell:` commands call `febm`; make the one installed next to this Python win even when the
# virtual environment is not activated (`.venv/bin/snakemake ...`).
_PYTHON_BIN = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _PYTHON_BIN:
    os.environ["PATH"] = _PYTHON_BIN + os.pathsep + os.environ.get("PATH", "")


def repo_path(relative):
    """A file shipped in this repository, as a path relative to the working directory."""
    return os.path.relpath(os.path.join(workflow.basedir, relative))


PAPER_RESULTS = repo_path("febm/data/reported_results.csv")
REPORT_TEMPLATES = repo_path("report")
GPU_CHECK_SCRIPT = repo_path("workflow/scripts/check_gpu.py")

# ---------------------------------------------------------------------------------------------
# The resolved config: every default filled, written once per content change and passed to every
# command, so `febm <cmd> --config results/config/resolved.yaml` by hand does what the workflow did.
# Rules take it as ancient() input and rerun through a digest of the sections they read instead:
# editing report.title must not retrain anything.
RESOLVED_CONFIG = "results/config/resolved.yaml"


def _plain(value):
    return json.loads(json.dumps(value))


def write_resolved_config(resolved, path=RESOLVED_CONFIG):
    import yaml

    text = yaml.safe_dump(_plain(resolved), sort_keys=True, default_flow_style=False)
    if os.path.exists(path):
        with open(path) as handle:
            if handle.read() == text:
                return
    febm.io.write_text_atomic(path, text)


write_resolved_config(config)
CONFIG_HASH = febm.config.config_hash(_plain(config))


def settings_key(stage):
    """A rule's rerun trigger (params): a hash of only the settings that change the stage's output
    (febm.runspec), so growing the grid or editing a figure option leaves finished runs alone."""
    return febm.runspec.settings_key(config, stage)


def dataset_settings_key(stage):
    """settings_key for a per-dataset stage: editing images.cifar10 reruns nothing of celeba32."""

    def key_of(wildcards):
        return febm.runspec.settings_key(config, stage, wildcards.dataset)

    return key_of


# ---------------------------------------------------------------------------------------------
# The grid. Which divergences, datasets, seeds and methods run is config (see config/README.md).
TOY = config["toy"]
TOY_ENABLED = TOY["enabled"]
TOY_DIVERGENCES = list(TOY["divergences"])
TOY_SEEDS = list(TOY["seeds"])
TOY_BASELINE_DIVERGENCE = febm.runspec.BASELINE_DIVERGENCE
TOY_BASELINES = list(febm.runspec.TOY_BASELINES)
TOY_FIGURES = [1, 2, 3, 4]


def _alternatives(names):
    return "|".join(re.escape(str(name)) for name in sorted(set(names), key=str))


wildcard_constraints:
    seed=r"\d+",
    figure=r"[1-4]",
    toy_method=_alternatives(["febm", *TOY_BASELINES]),
    toy_divergence=_alternatives([*TOY_DIVERGENCES, TOY_BASELINE_DIVERGENCE]),


# ---------------------------------------------------------------------------------------------
# Paths (templates with named wildcards, shared by rule outputs and expand()).
TOY_OPTIMUM = "results/toy/optimum/{toy_divergence}.json"
TOY_RUN_DIR = "results/toy/runs/{toy_method}/{toy_divergence}/seed{seed}"
TOY_CONVERGENCE = "results/toy/convergence/{toy_divergence}.csv"
TOY_STABILITY = "results/toy/stability/{toy_divergence}.json"
TOY_CHECK = "results/toy/check.json"  # written by toy_check only when no 1-D run failed
TABLE = "results/tables/table{table}.csv"
FIGURE_PNG = "results/figures/figure{figure}.png"
FIGURE_PDF = "results/figures/figure{figure}.pdf"
REPORT_HTML = "results/report/index.html"


def log_path(stage, name):
    return f"results/logs/{stage}/{name}.log"


def benchmark_path(stage, name):
    return f"results/benchmarks/{stage}/{name}.tsv"


def toy_runs():
    """(method, divergence, seed) of every 1-D training run: f-EBM per divergence, baselines on KL."""
    return [(run.method, run.divergence, run.seed) for run in febm.runspec.toy_runs(config)]


def toy_run_dirs():
    return [
        TOY_RUN_DIR.format(toy_method=method, toy_divergence=divergence, seed=seed)
        for method, divergence, seed in toy_runs()
    ]


def toy_run_metrics():
    return [f"{run_dir}/metrics.json" for run_dir in toy_run_dirs()]


def toy_optimum_divergences():
    """Every divergence with a numerical optimum: the configured ones plus KL for the baselines."""
    return febm.runspec.toy_optimum_divergences(config)


def toy_optima():
    return expand(TOY_OPTIMUM, toy_divergence=toy_optimum_divergences())


def toy_convergence_files():
    return expand(TOY_CONVERGENCE, toy_divergence=TOY_DIVERGENCES)


def toy_stability_files():
    return expand(TOY_STABILITY, toy_divergence=TOY_DIVERGENCES)


def toy_figures():
    return expand(FIGURE_PNG, figure=TOY_FIGURES) + expand(FIGURE_PDF, figure=TOY_FIGURES)


def toy_products():
    """What `all` builds for the 1-D study (nothing when toy.enabled is false)."""
    if not TOY_ENABLED:
        return []
    return [TABLE.format(table=5), *toy_figures(), *toy_stability_files(), TOY_CHECK]


# ---------------------------------------------------------------------------------------------
# The image study (Section 6.2): datasets x (f-EBM per divergence + the CD baseline) x seeds.
IMAGES = config["images"]
IMAGES_ENABLED = IMAGES["enabled"]
IMAGE_DATASETS = list(IMAGES["datasets"])
IMAGE_METHODS = list(IMAGES["methods"])
IMAGE_DIVERGENCES = list(IMAGES["divergences"])
IMAGE_SEEDS = list(IMAGES["seeds"])
IMAGE_THREADS = config["workflow"]["image_threads"]
IMAGE_CD_DIVERGENCE = febm.runspec.BASELINE_DIVERGENCE
# Table 1 is CIFAR-10 (class-conditional), Table 2 CelebA 32x32 (unconditional).
TABLE_OF_DATASET = {"cifar10": 1, "celeba32": 2}
DATASET_OF_TABLE = {table: dataset for dataset, table in TABLE_OF_DATASET.items()}
# Datasets scored with Inception (IS, FID) and those scored with a classifier the workflow trains.
INCEPTION_DATASETS = list(TABLE_OF_DATASET)
CLASSIFIER_DATASETS = ["fashion_mnist"]
# Stand-in data, weights and everything derived from them live apart from the real downloads, so
# a smoke run can never be mistaken for (or resumed into) a real one.
STANDIN = bool(IMAGES["standin_data"])
RESOURCES = "resources/standin" if STANDIN else "resources"


wildcard_constraints:
    dataset=_alternatives([*INCEPTION_DATASETS, *CLASSIFIER_DATASETS]),
    image_method=_alternatives(list(febm.runspec.IMAGE_METHODS)),
    image_divergence=_alternatives([*IMAGE_DIVERGENCES, IMAGE_CD_DIVERGENCE]),
    table=r"[125]",


RAW_DATA_ROOT = f"{RESOURCES}/data"
# Where each dataset's raw files live below the data root, in the layout torchvision expects.
RAW_LAYOUT = {
    "cifar10": "cifar-10-batches-py",
    "celeba32": "celeba/img_align_celeba",
    "fashion_mnist": "fashion-mnist",
}
# `febm make-standins --kind K --out ROOT` writes ROOT/<layout>, the same place the real files go.
STANDIN_KIND_OF_LAYOUT = {
    "cifar-10-batches-py": "cifar10",
    "celeba/img_align_celeba": "celeba",
    "fashion-mnist": "fashion_mnist",
}
PREPARED_DATA = f"{RESOURCES}/data/{{dataset}}.npz"
INCEPTION_WEIGHTS = f"{RESOURCES}/inception/pt_inception-2015-12-05-6726825d.pth"
FID_STATS = f"{RESOURCES}/fid_stats/{{dataset}}.npz"
GPU_CHECK = "results/images/gpu_check.json"
IMAGE_RUN = "{dataset}/{image_method}/{image_divergence}/seed{seed}"
IMAGE_RUN_DIR = f"results/images/runs/{IMAGE_RUN}"
IMAGE_SAMPLES = f"results/images/samples/{IMAGE_RUN}.npz"
IMAGE_SCORES = f"results/images/scores/{IMAGE_RUN}.json"
IMAGE_GRID = f"results/figures/samples/{IMAGE_RUN}.png"
DATASET_TABLE = "results/tables/{dataset}.csv"
CLASSIFIER = f"{RESOURCES}/classifier/{{dataset}}.pt"
CLASSIFIER_REFERENCE = "results/images/scores/{dataset}/reference/{reference}.json"
CLASSIFIER_REFERENCES = ["train", "noise"]
CLASSIFIER_CURVE = "results/figures/{dataset}_curve.png"
APPENDIX_FIGURE = f"results/figures/appendix/{{kind}}/{IMAGE_RUN}.png"
APPENDIX_KINDS = ["process", "denoise", "inpaint", "neighbours"]


def image_runs(datasets=None):
    """(dataset, method, divergence, seed) of every image training run."""
    return [(r.dataset, r.method, r.divergence, r.seed) for r in febm.runspec.image_runs(config, datasets)]


def image_run_files(template, datasets=None):
    return [
        template.format(dataset=dataset, image_method=method, image_divergence=divergence, seed=seed)
        for dataset, method, divergence, seed in image_runs(datasets)
    ]


def dataset_table(dataset):
    """Tables 1-2 for the paper's datasets; results/tables/<dataset>.csv for classifier-scored ones."""
    if dataset in TABLE_OF_DATASET:
        return TABLE.format(table=TABLE_OF_DATASET[dataset])
    return DATASET_TABLE.format(dataset=dataset)


def image_tables():
    return [dataset_table(dataset) for dataset in IMAGE_DATASETS]


def classifier_curves():
    """The quality-vs-iteration figure of every classifier-scored dataset whose runs are monitored."""
    return [
        CLASSIFIER_CURVE.format(dataset=dataset)
        for dataset in IMAGE_DATASETS
        if dataset in CLASSIFIER_DATASETS and IMAGES[dataset]["training"]["monitor_interval"]
    ]


def classifier_score_files(dataset):
    """Every score file of a classifier-scored dataset's table: its runs and the two reference rows."""
    runs = image_run_files(IMAGE_SCORES, datasets=[dataset])
    return runs + [CLASSIFIER_REFERENCE.format(dataset=dataset, reference=r) for r in CLASSIFIER_REFERENCES]


def appendix_figures():
    """Appendix G figures of every f-EBM run (not part of `all`: target `appendix_figures`)."""
    runs = [run for run in image_runs() if run[1] == "febm"]
    return [
        APPENDIX_FIGURE.format(kind=kind, dataset=dataset, image_method=method, image_divergence=divergence, seed=seed)
        for kind in APPENDIX_KINDS
        for dataset, method, divergence, seed in runs
    ]


def image_products():
    """What `all` builds for the image study (nothing when images.enabled is false)."""
    if not IMAGES_ENABLED:
        return []
    return image_tables() + classifier_curves()


# ---------------------------------------------------------------------------------------------
# Inputs of the 1-D study rules (toy.smk, tables_figures.smk).
def toy_febm_run_dirs_of(wildcards):
    return [
        TOY_RUN_DIR.format(toy_method="febm", toy_divergence=wildcards.toy_divergence, seed=seed)
        for seed in TOY_SEEDS
    ]


def toy_febm_metrics_of(wildcards):
    return [f"{run_dir}/metrics.json" for run_dir in toy_febm_run_dirs_of(wildcards)]


def toy_figure_convergence_args(wildcards):
    # Only Figure 4 (Appendix F.3) plots the convergence trajectories.
    if wildcards.figure != "4":
        return ""
    return "--convergence " + " ".join(toy_convergence_files())


def toy_figure_convergence_inputs(wildcards):
    return toy_convergence_files() if wildcards.figure == "4" else []


# ---------------------------------------------------------------------------------------------
# Inputs of the image rules (image_data.smk, image_train.smk, tables_figures.smk).
def raw_data_of(wildcards):
    # Real data is downloaded (or placed by hand) by prepare-data itself; only stand-ins are a rule.
    if not STANDIN:
        return []
    return f"{RAW_DATA_ROOT}/{RAW_LAYOUT[wildcards.dataset]}"


def standin_kind_of(wildcards):
    return STANDIN_KIND_OF_LAYOUT[wildcards.raw_layout]


def monitor_classifier_of(wildcards):
    """The classifier a run's monitor scores with: only where monitor_interval is set."""
    if wildcards.dataset not in CLASSIFIER_DATASETS:
        return []
    if not IMAGES[wildcards.dataset]["training"]["monitor_interval"]:
        return []
    return CLASSIFIER.format(dataset=wildcards.dataset)


def image_checkpoint_dir(wildcards):
    run = febm.runspec.RunSpec(
        "images", wildcards.dataset, wildcards.image_method, wildcards.image_divergence, int(wildcards.seed)
    )
    return febm.runspec.checkpoint_dir(config, run, RESOURCES)


def image_scores_of_table(wildcards):
    return image_run_files(IMAGE_SCORES, datasets=[DATASET_OF_TABLE[int(wildcards.table)]])


# ---------------------------------------------------------------------------------------------
# Inputs of the report (report.smk).
