"""What the report's tables are: one :class:`TableSpec` per section (title, note, paper table, study,
row order) and the display names of methods, metrics and columns. ``febm.reporting.tables`` reads the CSVs."""

from __future__ import annotations

from dataclasses import dataclass

from febm import results_schema
from febm.reporting.labels import TOY


@dataclass(frozen=True)
class TableSpec:
    """One results table of the report: its CSV, its study, its wording and whether the paper has it."""

    anchor: str  # the section id and the stem of its CSV (results/tables/<anchor>.csv)
    study: str  # whose scale labels and not-run reason apply (febm.reporting.labels.STUDIES)
    title: str
    note: str = ""  # may name $feature_dim (and other config facts the renderer passes)
    paper_table: int | None = (
        None  # the paper's rows in reported_results.csv; None: the paper has no such table
    )
    row_order_of: int | None = None  # a paper table whose (method, divergence) order our rows follow
    detail_columns: tuple[str, ...] = ()  # per-row CSV columns shown after the metrics
    summary_columns: tuple[str, ...] = ()  # CSV columns with one value per table, stated under it
    # the section also shows results/figures/<study>_curve.png (`febm classifier-curve`) below the table
    curve: bool = False


TABLE5 = TableSpec(
    "table5",
    TOY,
    "Table 5. 1-D Gaussian mixture: learned (μ, σ) against the exact f-divergence optimum",
    note="Exact optimum: ours is the quadrature minimiser of the f-divergence; the paper's comes from direct "
    "numerical minimisation in the original code. The baselines are fitted on KL. f-EBM is a local method: "
    "it can only be expected to reach the stationary point that gradient descent on the exact objective "
    "reaches from the runs' start (toy.train.init_mu, init_sigma), computed by the same quadrature. Where "
    "the divergence has several minima and that point is not the global optimum, it has its own line "
    "(Stationary point); Ended nearest says which of the two each converged seed ended closer to "
    "(optimum=stationary: they coincide) and Largest distance the farthest such seed, "
    "max(|Δμ|, |Δσ|). Seeds converged: runs that finished / runs started; a run that failed (a non-finite "
    "loss, invalid parameters) is left out of the mean, and its message is in the CSV below.",
    paper_table=5,
    detail_columns=("converged", "ended_near", "distance_max"),
)
TABLE1 = TableSpec(
    "table1",
    "cifar10",
    "Table 1. CIFAR-10 class-conditional generation: Inception Score and FID",
    note="The paper's ± on the Inception Score is the standard deviation over 10 splits of 5,000 samples of "
    "one run; ours is over seeds (the split standard deviation is in the CSV below).",
    paper_table=1,
)
TABLE2 = TableSpec(
    "table2",
    "celeba32",
    "Table 2. CelebA 32×32 unconditional generation: FID",
    note="FID against the preprocessed CelebA images of this reproduction; the paper does not state its "
    "CelebA preprocessing, so differences of a few points are expected even at paper scale.",
    paper_table=2,
)
FASHION_MNIST = TableSpec(
    "fashion_mnist",
    "fashion_mnist",
    "Fashion-MNIST (real images, class-conditional): scored by a classifier trained on its train split",
    note="The paper has no such table: this study runs offline on any machine, with a small CNN trained on "
    "the train split (then frozen) in place of Inception. Conditional accuracy: the share of samples the "
    "classifier assigns to the class they were sampled for (higher is better; chance is 10%). FID: the "
    "Fréchet distance between Gaussians fitted to the classifier's $feature_dim-d penultimate features of "
    "the samples and of the test split (lower is better; biased upwards at small n, so compare rows that "
    "score as many images). Inception Score: exp(E_x KL(p(y|x) ‖ p(y))) with the classifier's softmax as "
    "p(y|x) (from 1 to 10, the number of classes; higher is better). The reference rows are scored the "
    "same way: images of the train split (what perfect samples give) and uniform noise (what a model that "
    "learnt nothing gives). Dual-form rows, where run, train with Theorem 1's estimator (Section 3.1.2: a critic "
    "and a REINFORCE-like energy gradient that never sees the data), which the paper reports fails to generate "
    "images.",
    row_order_of=1,  # the order of Table 1 (CD, then f-EBM by divergence), so the two read alike
    detail_columns=("n_samples", "iterations", "train_wall_seconds"),
    summary_columns=("classifier_test_accuracy",),
    curve=True,
)
REPORT_TABLES = (TABLE5, TABLE1, TABLE2, FASHION_MNIST)  # in the order of the report's sections

REFERENCE = results_schema.REFERENCE  # the method of a reference row (febm classifier-table)
METHOD_DISPLAY = {
    "f-EBM": "f-EBM",
    "contrastive_divergence": "Contrastive divergence",
    "optimum": "Exact optimum",
    "stationary": "Stationary point (descent from the start)",
    "mle": "Maximum likelihood",
    "dual_form": "Dual form (Theorem 1)",
    REFERENCE: "Reference",
}
REFERENCE_DISPLAY = {
    "train split": "train split (what perfect samples give)",
    "uniform noise": "uniform noise (what nothing learnt gives)",
}
METRIC_DISPLAY = {
    "inception_score": "Inception Score",
    "fid": "FID",
    "mu": "μ",
    "sigma": "σ",
    "conditional_accuracy": "Conditional accuracy",
}
DETAIL_DISPLAY = {
    "n_samples": "Images scored",
    "iterations": "Training iterations",
    "train_wall_seconds": "Training time per run",
    "converged": "Seeds converged",
    "ended_near": "Ended nearest",
    "distance_max": "Largest distance",
}
SUMMARY_DISPLAY = {"classifier_test_accuracy": "Test-split accuracy of the scoring classifier"}
TOY_STATIONARY = "stationary"  # the method of Table 5's stationary-point lines
