"""Trajectories of (mu, sigma) from random initialisations (Figure 4, Appendix F.3)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import torch

from febm.io import write_text_atomic
from febm.toy.settings import TrainSettings, mixture_from_config
from febm.toy.train import ToyTrainer

CONVERGENCE_COLUMNS = ("divergence", "init", "mu0", "sigma0", "step", "mu", "sigma")


def random_inits(config: dict[str, Any]) -> list[tuple[float, float]]:
    """mu ~ U(mu_range), sigma ~ log-uniform(sigma_range), from the convergence seed."""
    settings = config["toy"]["convergence"]
    generator = torch.Generator().manual_seed(settings["seed"])
    (mu_lo, mu_hi), (sigma_lo, sigma_hi) = settings["mu_range"], settings["sigma_range"]
    inits = []
    for _ in range(settings["inits"]):
        u, v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        inits.append(
            (
                mu_lo + (mu_hi - mu_lo) * u,
                math.exp(math.log(sigma_lo) + (math.log(sigma_hi) - math.log(sigma_lo)) * v),
            )
        )
    return inits


def run_convergence(
    config: dict[str, Any], divergence: str, optimum: dict[str, Any], out: str | Path
) -> list[dict[str, float]]:
    """Train f-EBM from each initialisation with toy.train's settings over convergence.iterations steps."""
    torch.set_num_threads(config["toy"]["threads"])
    mixture = mixture_from_config(config)
    conv = config["toy"]["convergence"]
    settings = TrainSettings.from_config(config, log_every=max(1, conv["iterations"] // 200))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CONVERGENCE_COLUMNS)
    finals = []
    for index, (mu0, sigma0) in enumerate(random_inits(config)):
        trainer = ToyTrainer(
            "febm",
            divergence,
            mixture,
            settings,
            conv["seed"] + index,
            init=(mu0, sigma0),
            iterations=conv["iterations"],
        )
        result = trainer.run()
        writer.writerow([divergence, index, repr(mu0), repr(sigma0), 0, repr(mu0), repr(sigma0)])
        for row in result.trajectory:
            writer.writerow(
                [divergence, index, repr(mu0), repr(sigma0), int(row[0]), repr(row[1]), repr(row[2])]
            )
        finals.append(
            {
                "init": index,
                "mu0": mu0,
                "sigma0": sigma0,
                "mu": result.mu,
                "sigma": result.sigma,
                "mu_error": result.mu - optimum["mu"],
                "sigma_error": result.sigma - optimum["sigma"],
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
            }
        )
    return out
