"""Typed views of the ``toy`` config section (defaults live only in febm/schemas/config.schema.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from febm.config import load_config, validate
from febm.quadrature import GaussianMixture


@dataclass(frozen=True)
class TrainSettings:
    iterations: int
    batch_size: int
    model_batch_size: int
    hidden_units: int
    h_init_scale: float
    h_init_spread: float | None
    updates: str
    sampler: str
    stratified: bool
    langevin_steps: int
    langevin_step_size: float
    h_lr: float
    e_lr: float
    beta1: float
    beta2: float
    clip_rms: float
    clip_floor: float
    warmup_iterations: int
    h_warmup_iterations: int
    decay_start: float
    final_lr_fraction: float
    h_final_lr_fraction: float
    average_start: float
    l2: float
    exp_clamp: float | None
    conjugate_cap: float | None
    init_mu: float
    init_sigma: float
    log_every: int
    checkpoint_every: int
    engine: str

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any) -> TrainSettings:
        values = {f.name: config["toy"]["train"][f.name] for f in fields(cls)}
        values.update(overrides)
        return cls(**values)


def mixture_from_config(config: dict[str, Any]) -> GaussianMixture:
    mixture = config["toy"]["mixture"]
    return GaussianMixture(mixture["weights"], mixture["means"], mixture["stds"])


def default_config(preset: str | None = None) -> dict[str, Any]:
    """The schema defaults (every section), with ``preset`` set if given."""
    config: dict[str, Any] = {} if preset is None else {"preset": preset}
    return validate(config)


def config_for_preset(preset: str, extra: list[str] | None = None, root: str | Path = ".") -> dict[str, Any]:
    """config/config.yaml + config/<preset>.yaml where they exist (then ``extra``), else schema defaults."""
    root = Path(root)
    paths = [p for p in (root / "config" / "config.yaml", root / "config" / f"{preset}.yaml") if p.is_file()]
    paths += list(extra or [])
    if not paths:
        return default_config(preset)
    config = load_config(paths)
    config["preset"] = preset
    return config


def scale_label(config: dict[str, Any], iterations: int | None = None) -> str:
    """'paper' for the full-accuracy study at the schema's default scale, else what was reduced."""
    defaults = default_config()["toy"]["train"]
    train = config["toy"]["train"]
    iterations = train["iterations"] if iterations is None else iterations
    if iterations >= defaults["iterations"] and train["batch_size"] == defaults["batch_size"]:
        return "paper"
    return f"reduced: {iterations} steps, batch {train['batch_size']}"
