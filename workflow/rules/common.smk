# Helpers shared by every rule module: the resolved config, settings digests, the grid and paths.
# Named functions instead of lambdas, so rules read as plain lists of files.

import json
import re

import febm.config
import febm.io


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


def settings_digest(*sections):
    """A short hash of the preset plus the named config sections: a rule's params rerun trigger."""
    selected = {"preset": config["preset"]}
    for section in sections:
        selected[section] = config.get(section, {})
    return febm.config.config_hash(_plain(selected))


# ---------------------------------------------------------------------------------------------
# The grid. Which divergences, datasets, seeds and methods run is config (see config/README.md).
TOY = config["toy"]
TOY_ENABLED = TOY["enabled"]
TOY_DIVERGENCES = list(TOY["divergences"])
TOY_SEEDS = list(TOY["seeds"])
# Baselines of Table 5 are defined for KL only: contrastive divergence (Eq. 8) and maximum likelihood.
TOY_BASELINE_DIVERGENCE = "kl"
TOY_BASELINES = ["cd", "mle"]
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
    runs = [("febm", divergence, seed) for divergence in TOY_DIVERGENCES for seed in TOY_SEEDS]
    runs += [(method, TOY_BASELINE_DIVERGENCE, seed) for method in TOY_BASELINES for seed in TOY_SEEDS]
    return runs


def toy_run_dirs():
    return [
        TOY_RUN_DIR.format(toy_method=method, toy_divergence=divergence, seed=seed)
        for method, divergence, seed in toy_runs()
    ]


def toy_run_metrics():
    return [f"{run_dir}/metrics.json" for run_dir in toy_run_dirs()]


def toy_optimum_divergences():
    """Every divergence with a numerical optimum: the configured ones plus KL for the baselines."""
    extra = [] if TOY_BASELINE_DIVERGENCE in TOY_DIVERGENCES else [TOY_BASELINE_DIVERGENCE]
    return TOY_DIVERGENCES + extra


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
    return [TABLE.format(table=5), *toy_figures(), *toy_stability_files()]


# ---------------------------------------------------------------------------------------------
# The image study (Section 6.2): datasets x (f-EBM per divergence + the CD baseline) x seeds.
IMAGES = config["images"]
IMAGES_ENABLED = IMAGES["enabled"]
IMAGE_DATASETS = list(IMAGES["datasets"])
IMAGE_METHODS = list(IMAGES["methods"])
IMAGE_DIVERGENCES = list(IMAGES["divergences"])
IMAGE_SEEDS = list(IMAGES["seeds"])
# Contrastive divergence has no divergence choice; its underlying discrepancy is KL (Section 6.2).
IMAGE_CD_DIVERGENCE = "kl"
# Table 1 is CIFAR-10 (class-conditional), Table 2 CelebA 32x32 (unconditional).
TABLE_OF_DATASET = {"cifar10": 1, "celeba32": 2}
DATASET_OF_TABLE = {table: dataset for dataset, table in TABLE_OF_DATASET.items()}
# Stand-in data, weights and everything derived from them live apart from the real downloads, so
# a smoke run can never be mistaken for (or resumed into) a real one.
STANDIN = bool(IMAGES["standin_data"])
RESOURCES = "resources/standin" if STANDIN else "resources"


wildcard_constraints:
    dataset=_alternatives(TABLE_OF_DATASET),
    image_method=_alternatives(["febm", "cd"]),
    image_divergence=_alternatives([*IMAGE_DIVERGENCES, IMAGE_CD_DIVERGENCE]),
    table=r"[125]",


RAW_DATA_ROOT = f"{RESOURCES}/data"
PREPARED_DATA = f"{RESOURCES}/data/{{dataset}}.npz"
INCEPTION_WEIGHTS = f"{RESOURCES}/inception/pt_inception-2015-12-05-6726825d.pth"
FID_STATS = f"{RESOURCES}/fid_stats/{{dataset}}.npz"
GPU_CHECK = "results/images/gpu_check.json"
IMAGE_RUN = "{dataset}/{image_method}/{image_divergence}/seed{seed}"
IMAGE_RUN_DIR = f"results/images/runs/{IMAGE_RUN}"
IMAGE_SAMPLES = f"results/images/samples/{IMAGE_RUN}.npz"
IMAGE_SCORES = f"results/images/scores/{IMAGE_RUN}.json"
IMAGE_GRID = f"results/figures/samples/{IMAGE_RUN}.png"


def image_runs(datasets=None):
    """(dataset, method, divergence, seed) of every image training run."""
    runs = []
    for dataset in IMAGE_DATASETS if datasets is None else datasets:
        for method in IMAGE_METHODS:
            divergences = IMAGE_DIVERGENCES if method == "febm" else [IMAGE_CD_DIVERGENCE]
            runs += [(dataset, method, divergence, seed) for divergence in divergences for seed in IMAGE_SEEDS]
    return runs


def image_run_files(template, datasets=None):
    return [
        template.format(dataset=dataset, image_method=method, image_divergence=divergence, seed=seed)
        for dataset, method, divergence, seed in image_runs(datasets)
    ]


def image_tables():
    return [TABLE.format(table=TABLE_OF_DATASET[dataset]) for dataset in IMAGE_DATASETS]


def image_products():
    """What `all` builds for the image study (nothing when images.enabled is false)."""
    if not IMAGES_ENABLED:
        return []
    return image_tables()
