"""Trajectories of (mu, sigma) from random initialisations (Figure 4, Appendix F.3)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import torch

from febm.errors import FebmError
from febm.io import write_text_atomic
from febm.toy.settings import TrainSettings, mixture_from_config
from febm.toy.train import ToyTrainer

CONVERGENCE_COLUMNS = ("divergence", "init", "mu0", "sigma0", "step", "mu", "sigma", "status")


class ToyConvergenceError(FebmError):
    """Convergence settings that cannot produce the requested trajectories."""


def random_inits(config: dict[str, Any], divergence: str | None = None) -> list[tuple[float, float]]:
    """mu ~ U(mu_range), sigma ~ log-uniform(sigma_range), from the convergence seed.

    With ``divergence``, draws where D_f(p || q_init) is infinite are skipped (e.g. sigma > 2 for Neyman
    chi^2, sigma <= 1 for Pearson chi^2 on the default mixture): there the objective has no finite value
    to descend and its Monte-Carlo estimates overflow.
    """
    from febm.divergences import get_divergence
    from febm.toy.optimum import gaussian_divergence

    settings = config["toy"]["convergence"]
    mixture = mixture_from_config(config)
    div = None if divergence is None else get_divergence(divergence)
    generator = torch.Generator().manual_seed(settings["seed"])
    (mu_lo, mu_hi), (sigma_lo, sigma_hi) = settings["mu_range"], settings["sigma_range"]
    inits = []
    for _ in range(1000 * settings["inits"]):
        u, v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        mu = mu_lo + (mu_hi - mu_lo) * u
        sigma = math.exp(math.log(sigma_lo) + (math.log(sigma_hi) - math.log(sigma_lo)) * v)
        if div is None or math.isfinite(float(gaussian_divergence(div, mixture, mu, sigma, resolution=10))):
            inits.append((mu, sigma))
        if len(inits) == settings["inits"]:
            return inits
    raise ToyConvergenceError(
        f"D_f(p||q) for {divergence!r} is infinite at almost every start in toy.convergence's mu_range "
        f"{settings['mu_range']} x sigma_range {settings['sigma_range']}; widen or move the ranges"
    )


def run_convergence(
    config: dict[str, Any], divergence: str, optimum: dict[str, Any], out: str | Path
) -> list[dict[str, Any]]:
    """Train f-EBM from each initialisation with toy.train's settings over convergence.iterations steps.

    A trajectory whose loss becomes non-finite is kept up to that step and marked in ``status`` (the
    study goes on; Figure 4 shows where it stopped).
    """
    from febm.objectives import NonFiniteLossError
    from febm.toy.train import ToyTrainingError

    torch.set_num_threads(config["toy"]["threads"])
    mixture = mixture_from_config(config)
    conv = config["toy"]["convergence"]
    settings = TrainSettings.from_config(config, log_every=max(1, conv["iterations"] // 200))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CONVERGENCE_COLUMNS)
    finals = []
    for index, (mu0, sigma0) in enumerate(random_inits(config, divergence)):
        trainer = ToyTrainer(
            "febm",
            divergence,
            mixture,
            settings,
            conv["seed"] + index,
            init=(mu0, sigma0),
            iterations=conv["iterations"],
        )
        status = "completed"
        try:
            trainer.run()
        except (NonFiniteLossError, ToyTrainingError) as error:
            status = f"stopped: {error}"
        rows = [(0, mu0, sigma0), *((int(r[0]), r[1], r[2]) for r in trainer.trajectory)]
        for step, mu, sigma in rows:
            writer.writerow([divergence, index, repr(mu0), repr(sigma0), step, repr(mu), repr(sigma), status])
        mu, sigma = trainer.estimate()
        finals.append(
            {
                "init": index,
                "mu0": mu0,
                "sigma0": sigma0,
                "mu": mu,
                "sigma": sigma,
                "mu_error": mu - optimum["mu"],
                "sigma_error": sigma - optimum["sigma"],
                "status": status,
            }
        )
    write_text_atomic(out, buffer.getvalue())
    return finals


def read_convergence(path: str | Path) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        out.append(
            {
                "divergence": row["divergence"],
                "init": int(row["init"]),
                "step": int(row["step"]),
                "mu": float(row["mu"]),
                "sigma": float(row["sigma"]),
                "status": row.get("status", "completed"),
            }
        )
    return out
