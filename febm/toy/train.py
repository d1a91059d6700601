"""Training the Gaussian EBM of Eq. 20 on the mixture: single-step f-EBM (Algorithm 1), CD and MLE.

Every loss comes from :mod:`febm.objectives` (``variational_loss`` for H, ``energy_loss`` = Eq. 18 for E,
``contrastive_divergence_loss`` for CD); the updates of each engine (fast: the per-sample gradients of
:mod:`febm.toy.fast_grad` and the chain rule by hand; autograd: the textbook torch loop) are
:class:`febm.toy.updates.ToyUpdates`. This module holds the run: state, sampling (exact draws or persistent
Langevin chains, :mod:`febm.langevin`), the schedule, averaging and checkpoints.

A run is resumable: the full state (parameters, optimisers, RNG, step, averages, trajectory) is saved
atomically every ``checkpoint_every`` iterations into a folder named after the run's settings key (the two
newest kept, :mod:`febm.checkpoints`), and a resumed run is bit-identical on CPU to an uninterrupted one.
Both optimisers are :class:`febm.optim.ClippedAdam` in its ``TORCH_ADAM`` convention (Table 5's numbers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from febm import checkpoints
from febm.config import config_hash
from febm.divergences import Divergence, get_divergence
from febm.errors import FebmError
from febm.langevin import langevin_dynamics
from febm.objectives import NonFiniteLossError
from febm.optim import TORCH_ADAM, ClippedAdam
from febm.quadrature import GaussianMixture, standard_normal
from febm.quadrature import gaussian_energy as energy  # noqa: F401 (imported from here by benchmarks/toy_speed.py)
from febm.toy.network import FlatMLP, flat_to_state_dict, module_from_flat, state_dict_to_flat
from febm.toy.settings import TrainSettings
from febm.toy.tails import RatioCapped, ratio_cap_for
from febm.toy.updates import ToyUpdates

METHODS = ("febm", "cd", "mle")
TRAJECTORY_COLUMNS = ("step", "mu", "sigma", "mu_avg", "sigma_avg", "objective", "e_lr")
CHECKPOINTS = "checkpoints"  # <run dir>/checkpoints/<settings key>/state_<step>_rank0.pt
KEEP_CHECKPOINTS = 2  # the newest and the one before it (the fallback for a damaged newest file)


class ToyTrainingError(FebmError):
    """A 1-D training run that cannot continue (invalid method/divergence or parameters)."""


class ToyDivergedError(ToyTrainingError):
    """The run itself diverged (parameters left the valid region): recorded as a failed run, not a user error."""


def lr_multiplier(
    step: int, total: int, decay_start: float, final_fraction: float, warmup: int = 0, delay: int = 0
) -> float:
    """0 for ``delay`` steps, a linear warm-up over ``warmup`` steps, 1 until decay_start * total, then a
    cosine down to final_fraction at the last step."""
    if step < delay:
        return 0.0
    if step < delay + warmup:
        return (step - delay + 1) / warmup
    start = decay_start * total
    if step < start or total <= start:
        return 1.0
    progress = min(1.0, (step - start) / max(total - start, 1.0))
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class RunResult:
    mu: float
    sigma: float
    mu_last: float
    sigma_last: float
    iterations: int
    wall_seconds: float
    trajectory: list[tuple[float, ...]]
    h_flat: Tensor | None
    resumed_from: int
    extra: dict[str, Any] = field(default_factory=dict)


class ToyTrainer(ToyUpdates):
    """One training run: state, one-iteration update, checkpoint save/load."""

    def __init__(
        self,
        method: str,
        divergence: str,
        mixture: GaussianMixture,
        settings: TrainSettings,
        seed: int,
        init: tuple[float, float] | None = None,
        iterations: int | None = None,
    ) -> None:
        if method not in METHODS:
            raise ToyTrainingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if method in ("cd", "mle") and divergence != "kl":
            raise ToyTrainingError(
                f"method {method!r} minimises KL; pass --divergence kl (got {divergence!r})"
            )
        self.method, self.mixture, self.settings, self.seed = method, mixture, settings, seed
        self.divergence: Divergence = get_divergence(divergence, exp_clamp=settings.exp_clamp)
        # Both steps use g and c at min(t, ratio_cap) (febm/toy/tails.py): the objective whose equilibrium is
        # trained; for t* = log p/q below the cap it is the f-divergence's own.
        cap = (
            None if settings.conjugate_cap is None else ratio_cap_for(self.divergence, settings.conjugate_cap)
        )
        self.ratio_cap = cap
        self.train_divergence = self.divergence if cap is None else RatioCapped(self.divergence, cap)
        self.iterations = settings.iterations if iterations is None else iterations
        self.generator = torch.Generator().manual_seed(seed)
        mu0, sigma0 = (settings.init_mu, settings.init_sigma) if init is None else init
        if not sigma0 > 0:
            raise ToyTrainingError(f"initial sigma must be positive, got {sigma0}")
        fast = settings.engine == "fast"
        self.theta = torch.tensor([mu0, sigma0], dtype=torch.float32, requires_grad=not fast)
        self.opt_e = self._optimiser([self.theta], settings.e_lr)
        self.uses_h = method == "febm"
        self.omega: Tensor | None = None
        self.module: torch.nn.Sequential | None = None
        if self.uses_h:
            flat = FlatMLP.initial(
                settings.hidden_units,
                self.generator,
                first_layer_scale=settings.h_init_scale,
                centre_range=mixture.support(settings.h_init_spread) if settings.h_init_spread else None,
            )
            if fast:
                self.omega = flat
                self.grad_buffer = torch.empty_like(flat)
                self.opt_h = self._optimiser([self.omega], settings.h_lr)
            else:
                self.module = module_from_flat(flat, settings.hidden_units)
                self.opt_h = self._optimiser(list(self.module.parameters()), settings.h_lr)
        self.chains: Tensor | None = None
        if settings.sampler == "langevin":
            self.chains = mu0 + sigma0 * torch.randn(settings.model_batch_size, generator=self.generator)
        self.step = 0
        self.average_sum = torch.zeros(2, dtype=torch.float64)
        self.average_count = 0
        self.trajectory: list[tuple[float, ...]] = []
        self.last_objective = math.nan
        self.wall_before = 0.0
        self.resumed_from = 0

    def _optimiser(self, params: list[Tensor], lr: float) -> ClippedAdam:
        """Adam in torch's convention, each gradient element clipped to clip_rms RMS + clip_floor (0: off)."""
        s = self.settings
        clip = s.clip_rms if s.clip_rms > 0 else None
        betas = (s.beta1, s.beta2)
        return ClippedAdam(params, lr, betas, clip_std=clip, clip_floor=s.clip_floor, convention=TORCH_ADAM)

    # ---- sampling -------------------------------------------------------------------------------
    def sample_model(self) -> Tensor:
        mu, sigma = self.theta.detach()
        n = self.settings.model_batch_size
        if self.chains is None:
            return mu + sigma * standard_normal(n, self.generator, stratified=self.settings.stratified)
        # Eq. 5 as written: x <- x - eps/2 dE/dx + sqrt(eps) z, with dE/dx = (x - mu)/sigma^2 (H is not used).
        eps = self.settings.langevin_step_size
        self.chains = langevin_dynamics(
            self.chains,
            lambda x: (x - mu) / sigma**2,
            steps=self.settings.langevin_steps,
            step_size=0.5 * eps,
            noise_std=math.sqrt(eps),
            noise_first=False,
            generator=self.generator,
        )
        return self.chains.clone()

    # ---- one iteration ----------------------------------------------------------------------------
    def train_step(self) -> None:
        step = self.step
        settings = self.settings
        schedule = (step, self.iterations, settings.decay_start, settings.final_lr_fraction)
        # H alone is trained for the first h_warmup_iterations: E's first updates need a sensible H.
        delay = settings.h_warmup_iterations if self.uses_h else 0
        multiplier = lr_multiplier(*schedule, settings.warmup_iterations, delay)
        self.opt_e.set_lr(settings.e_lr * multiplier)
        if self.uses_h:
            h_schedule = (step, self.iterations, settings.decay_start, settings.h_final_lr_fraction)
            self.opt_h.set_lr(settings.h_lr * lr_multiplier(*h_schedule, settings.warmup_iterations))
        x_pos = self.mixture.sample(settings.batch_size, self.generator, stratified=settings.stratified)
        x_neg = self.sample_model()
        update_energy = multiplier > 0
        if self.method == "febm":
            if settings.engine == "fast":
                self._febm_step_fast(x_pos, x_neg, step, update_energy)
            else:
                self._febm_step_autograd(x_pos, x_neg, step, update_energy)
        else:
            self._baseline_step(x_pos, x_neg, step)
        mu, sigma = (float(v) for v in self.theta.detach())
        if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
            raise ToyDivergedError(
                f"energy parameters became invalid at step {step} (mu = {mu}, sigma = {sigma}); "
                "lower toy.train.e_lr"
            )
        self.step += 1
        if self.step > self.settings.average_start * self.iterations:
            self.average_sum += self.theta.detach().double()
            self.average_count += 1
        if self.step % self.settings.log_every == 0 or self.step == self.iterations:
            mu_avg, sigma_avg = self.estimate()
            self.trajectory.append(
                (
                    self.step,
                    mu,
                    sigma,
                    mu_avg,
                    sigma_avg,
                    self.last_objective,
                    self.settings.e_lr * multiplier,
                )
            )

    def estimate(self) -> tuple[float, float]:
        """The reported (mu, sigma): the iterate average once averaging has started, else the iterate."""
        if self.average_count == 0:
            mu, sigma = self.theta.detach().tolist()
            return mu, sigma
        mu, sigma = (self.average_sum / self.average_count).tolist()
        return mu, sigma

    # ---- H access -----------------------------------------------------------------------------------
    def h_flat(self) -> Tensor | None:
        if not self.uses_h:
            return None
        if self.omega is not None:
            return self.omega.detach().clone()
        return state_dict_to_flat(self.module.state_dict()).clone()

    # ---- checkpoints ----------------------------------------------------------------------------------
    def state(self, wall_seconds: float) -> dict[str, Any]:
        """The full training state (the run's identity and settings are its settings key, not fields)."""
        state = {
            "step": self.step,
            "theta": self.theta.detach().clone(),
            "opt_e": self.opt_e.state_dict(),
            "generator": self.generator.get_state(),
            "average_sum": self.average_sum.clone(),
            "average_count": self.average_count,
            "trajectory": torch.tensor(self.trajectory, dtype=torch.float64).reshape(
                -1, len(TRAJECTORY_COLUMNS)
            ),
            "last_objective": self.last_objective,
            "wall_seconds": wall_seconds,
        }
        if self.uses_h:
            state["h_flat"] = self.h_flat()
            state["opt_h"] = self.opt_h.state_dict()
        if self.chains is not None:
            state["chains"] = self.chains.clone()
        return state

    @property
    def settings_key(self) -> str:
        """The checkpoint fingerprint: the run's identity and every setting that changes its numbers (the
        run length included: the learning-rate schedule depends on it; the checkpoint cadence not)."""
        train = {name: value for name, value in self.settings.__dict__.items() if name != "checkpoint_every"}
        mixture = {"weights": self.mixture.weights, "means": self.mixture.means, "stds": self.mixture.stds}
        identity = {"method": self.method, "divergence": self.divergence.name, "seed": self.seed}
        return config_hash({**identity, "iterations": self.iterations, "train": train, "mixture": mixture})

    def checkpoint_dir(self, run_dir: str | Path) -> Path:
        """``<run dir>/checkpoints/<settings key>``: a config edit starts a fresh folder, switching back resumes."""
        return Path(run_dir) / CHECKPOINTS / self.settings_key

    def load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.theta.copy_(state["theta"])
        self.opt_e.load_state_dict(state["opt_e"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.average_sum = state["average_sum"].clone()
        self.average_count = int(state["average_count"])
        self.trajectory = [tuple(row) for row in state["trajectory"].tolist()]
        self.last_objective = float(state["last_objective"])
        self.wall_before = float(state["wall_seconds"])
        if self.uses_h:
            with torch.no_grad():
                if self.omega is not None:
                    self.omega.copy_(state["h_flat"])
                else:
                    self.module.load_state_dict(
                        flat_to_state_dict(state["h_flat"], self.settings.hidden_units)
                    )
            self.opt_h.load_state_dict(state["opt_h"])
        if "chains" in state:
            self.chains = state["chains"].clone()
        self.resumed_from = self.step

    def run(
        self,
        checkpoint_dir: str | Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Train to ``iterations``, resuming from the newest readable state in ``checkpoint_dir`` (see
        :meth:`checkpoint_dir`); a state of other settings there is refused (``febm.checkpoints``)."""
        key = self.settings_key
        if checkpoint_dir is not None:
            found = checkpoints.load_newest(
                checkpoint_dir, key, what="febm toy-train", other_folder="--out-dir"
            )
            if found is not None:
                self.load_state(found[1])
        start = time.perf_counter()
        try:
            while self.step < self.iterations:
                self.train_step()
                if progress is not None:
                    progress(self.step)
                if checkpoint_dir is not None and (
                    self.step % self.settings.checkpoint_every == 0 or self.step == self.iterations
                ):
                    state = self.state(self.wall_before + time.perf_counter() - start)
                    checkpoints.save_state(checkpoint_dir, self.step, state, key)
                    checkpoints.prune_states(checkpoint_dir, KEEP_CHECKPOINTS)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(
                f"{self.method} on {self.divergence.name}, seed {self.seed}: {error}"
            ) from None
        wall = self.wall_before + time.perf_counter() - start
        mu, sigma = self.estimate()
        mu_last, sigma_last = self.theta.detach().tolist()
        return RunResult(
            mu=mu,
            sigma=sigma,
            mu_last=mu_last,
            sigma_last=sigma_last,
            iterations=self.step,
            wall_seconds=wall,
            trajectory=list(self.trajectory),
            h_flat=self.h_flat(),
            resumed_from=self.resumed_from,
        )
