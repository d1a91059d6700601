"""Training the Gaussian EBM of Eq. 20 on the mixture: single-step f-EBM (Algorithm 1), CD and MLE.

Every loss comes from :mod:`febm.objectives` (``variational_loss`` for H, ``energy_loss`` = Eq. 18 for E,
``contrastive_divergence_loss`` for CD). The fast engine uses their per-sample gradients written out in
:mod:`febm.toy.fast_grad` (tested equal to autograd through those losses) and the chain rule through the
network (:class:`febm.toy.network.FlatMLP`) and the quadratic energy by hand; the loss values themselves
are only computed to log them or to name a non-finite term. The plain engine (``engine: autograd``) is the
textbook torch loop over the same losses.

A run is resumable: the full state (parameters, optimisers, RNG, step, averages, trajectory) is saved
atomically every ``checkpoint_every`` iterations (newest and previous copy, ``febm.io.save_checkpoint``),
and a resumed run is bit-identical on CPU to an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from febm.divergences import Divergence, get_divergence
from febm.errors import FebmError
from febm.io import load_checkpoint, save_checkpoint
from febm.objectives import (
    NonFiniteLossError,
    Objective,
    contrastive_divergence_loss,
    energy_loss,
    variational_loss,
)
from febm.quadrature import GaussianMixture, standard_normal
from febm.quadrature import gaussian_energy as energy
from febm.toy.fast_grad import (
    FlatAdam,
    clip_to_rms,
    energy_output_grad,
    output_derivatives,
    variational_output_grad,
)
from febm.toy.network import FlatMLP, flat_to_state_dict, module_from_flat, state_dict_to_flat
from febm.toy.settings import TrainSettings
from febm.toy.tails import RatioCapped, ratio_cap_for

METHODS = ("febm", "cd", "mle")
TRAJECTORY_COLUMNS = ("step", "mu", "sigma", "mu_avg", "sigma_avg", "objective", "e_lr")
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


class ToyTrainingError(FebmError):
    """A 1-D training run that cannot continue (invalid parameters, unusable checkpoint)."""


def energy_parameter_gradient(x: Tensor, mu: Tensor, sigma: Tensor, grad_e: Tensor) -> Tensor:
    """d loss/d(mu, sigma) from d loss/dE(x_i): dE/dmu = -(x - mu)/sigma^2, dE/dsigma = -(x - mu)^2/sigma^3."""
    centred = x - mu
    return torch.stack([-(grad_e * centred).sum() / sigma**2, -(grad_e * centred.square()).sum() / sigma**3])


def maximum_likelihood_loss(e_pos: Tensor, sigma: Tensor) -> Objective:
    """Exact negative log-likelihood of N(mu, sigma^2) up to a constant: mean E + log Z, log Z = log sigma."""
    nll = e_pos.mean() + torch.log(sigma)
    return Objective(nll, {"nll": nll})


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


class TorchAdam:
    """torch.optim.Adam behind FlatAdam's interface (the plain engine's optimiser)."""

    def __init__(
        self,
        params: list[Tensor],
        lr: float,
        betas: tuple[float, float],
        clip: float = 0.0,
        floor: float = 0.0,
    ) -> None:
        self.params, self.beta2, self.clip, self.floor = params, betas[1], clip, floor
        self.optimizer = torch.optim.Adam(params, lr=lr, betas=betas)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, grad: Tensor | None = None) -> None:
        if grad is not None:  # one parameter tensor with a gradient computed elsewhere
            self.params[0].grad = grad
        for param in self.params:
            state = self.optimizer.state.get(param, {})
            steps = int(state["step"]) if "step" in state else 0
            v = state["exp_avg_sq"] if steps else torch.zeros_like(param)
            param.grad = clip_to_rms(param.grad, v, steps, self.beta2, self.clip, self.floor)
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


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


class ToyTrainer:
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
        betas = (settings.beta1, settings.beta2)
        self.theta = torch.tensor([mu0, sigma0], dtype=torch.float32, requires_grad=not fast)
        clip = (settings.clip_rms, settings.clip_floor)
        if fast:
            self.opt_e = FlatAdam(self.theta, settings.e_lr, betas, *clip)
        else:
            self.opt_e = TorchAdam([self.theta], settings.e_lr, betas, *clip)
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
                self.train_derivatives = output_derivatives(self.train_divergence)
                self.opt_h = FlatAdam(self.omega, settings.h_lr, betas, *clip)
            else:
                self.module = module_from_flat(flat, settings.hidden_units)
                self.opt_h = TorchAdam(list(self.module.parameters()), settings.h_lr, betas, *clip)
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

    # ---- sampling -------------------------------------------------------------------------------
    def sample_model(self) -> Tensor:
        mu, sigma = self.theta.detach()
        n = self.settings.model_batch_size
        if self.chains is None:
            return mu + sigma * standard_normal(n, self.generator, stratified=self.settings.stratified)
        eps = self.settings.langevin_step_size
        for _ in range(self.settings.langevin_steps):
            # Eq. 5: x <- x - eps/2 dE/dx + sqrt(eps) z, with dE/dx = (x - mu)/sigma^2 (H is not used).
            noise = torch.randn(n, generator=self.generator)
            self.chains = self.chains - 0.5 * eps * (self.chains - mu) / sigma**2 + math.sqrt(eps) * noise
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
            raise ToyTrainingError(
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

    def _febm_step_fast(self, x_pos: Tensor, x_neg: Tensor, step: int, update_energy: bool = True) -> None:
        n_pos, l2 = x_pos.numel(), self.settings.l2
        x = torch.cat([x_pos, x_neg])
        mu, sigma = self.theta.detach()
        e = energy(x, mu, sigma)
        net = FlatMLP(self.omega, self.settings.hidden_units)
        h, cache = net.forward(x)
        # H step: d variational_loss / dH per sample, then backprop through the MLP by hand.
        t = h + e
        grad_h = variational_output_grad(
            self.train_derivatives, t[:n_pos], t[n_pos:], h[:n_pos], h[n_pos:], l2
        )
        if self._needs_objective(step, grad_h):
            objective = variational_loss(
                self.train_divergence, h[:n_pos], e[:n_pos], h[n_pos:], e[n_pos:], l2
            )
            self._check(objective, step, "H")
            self.last_objective = float(objective.terms["bound"])
        self.opt_h.step(net.backward(x, cache, grad_h, self.grad_buffer))
        if not update_energy:
            return
        # E step: H recomputed after its update (alternating, Algorithm 1) or reused (simultaneous).
        if self.settings.updates == "alternating":
            h, _ = net.forward(x, keep=False)
            t = h + e
        grad_e = energy_output_grad(
            self.train_divergence, self.train_derivatives, t[:n_pos], t[n_pos:], e[:n_pos], e[n_pos:], l2
        )
        if self._needs_objective(step, grad_e, logging=False):
            objective = energy_loss(self.train_divergence, e[:n_pos], h[:n_pos], e[n_pos:], h[n_pos:], l2)
            self._check(objective, step, "E")
        self.opt_e.step(energy_parameter_gradient(x, mu, sigma, grad_e))

    def _needs_objective(self, step: int, grad: Tensor, logging: bool = True) -> bool:
        """The loss value is only needed to log it, or to name the failing term when a gradient is not finite."""
        logged = logging and (step + 1) % self.settings.log_every == 0
        return logged or not bool(torch.isfinite(grad).all())

    @staticmethod
    def _check(objective: Objective, step: int, network: str) -> None:
        objective.check_finite(step)
        if not all(bool(torch.isfinite(v).all()) for v in objective.terms.values()):
            raise NonFiniteLossError(f"the gradient of the {network} loss is not finite at step {step}")

    def _febm_step_autograd(
        self, x_pos: Tensor, x_neg: Tensor, step: int, update_energy: bool = True
    ) -> None:
        """The plain loop: nn.Module forward/backward for both updates."""
        module, theta = self.module, self.theta
        x_pos_col, x_neg_col = x_pos[:, None], x_neg[:, None]
        e_pos, e_neg = energy(x_pos, theta[0], theta[1]), energy(x_neg, theta[0], theta[1])
        h_pos, h_neg = module(x_pos_col).squeeze(1), module(x_neg_col).squeeze(1)
        objective = variational_loss(self.train_divergence, h_pos, e_pos, h_neg, e_neg, self.settings.l2)
        objective.check_finite(step)
        self.last_objective = float(objective.terms["bound"].detach())
        self.opt_h.zero_grad()
        objective.total.backward()
        self.opt_h.step()
        if not update_energy:
            return
        if self.settings.updates == "alternating":
            with torch.no_grad():
                h_pos, h_neg = module(x_pos_col).squeeze(1), module(x_neg_col).squeeze(1)
        else:
            h_pos, h_neg = h_pos.detach(), h_neg.detach()
        e_pos, e_neg = energy(x_pos, theta[0], theta[1]), energy(x_neg, theta[0], theta[1])
        objective = energy_loss(self.train_divergence, e_pos, h_pos, e_neg, h_neg, self.settings.l2)
        objective.check_finite(step)
        self.opt_e.zero_grad()
        objective.total.backward()
        self.opt_e.step()

    def _baseline_step(self, x_pos: Tensor, x_neg: Tensor, step: int) -> None:
        """CD (Eq. 8) or exact maximum likelihood: two parameters, so plain autograd is cheap enough."""
        theta = self.theta.detach().requires_grad_(True)
        e_pos = energy(x_pos, theta[0], theta[1])
        if self.method == "cd":
            objective = contrastive_divergence_loss(
                e_pos, energy(x_neg, theta[0], theta[1]), self.settings.l2
            )
        else:
            objective = maximum_likelihood_loss(e_pos, theta[1])
        objective.check_finite(step)
        self.last_objective = float(objective.total.detach())
        (grad,) = torch.autograd.grad(objective.total, theta)
        self.opt_e.step(grad)

    # ---- H access -----------------------------------------------------------------------------------
    def h_flat(self) -> Tensor | None:
        if not self.uses_h:
            return None
        if self.omega is not None:
            return self.omega.detach().clone()
        return state_dict_to_flat(self.module.state_dict()).clone()

    # ---- checkpoints ----------------------------------------------------------------------------------
    def state(self, wall_seconds: float) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT,
            "method": self.method,
            "divergence": self.divergence.name,
            "seed": self.seed,
            "iterations": self.iterations,
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
            "engine": self.settings.engine,
            "settings": self.settings_fingerprint(),
        }
        if self.uses_h:
            state["h_flat"] = self.h_flat()
            state["opt_h"] = self.opt_h.state_dict()
        if self.chains is not None:
            state["chains"] = self.chains.clone()
        return state

    def settings_fingerprint(self) -> str:
        """Everything besides method/divergence/seed that shapes the run: a checkpoint with another is stale."""
        mixture = (self.mixture.weights, self.mixture.means, self.mixture.stds)
        return json.dumps({"train": self.settings.__dict__, "mixture": mixture}, sort_keys=True)

    def load_state(self, state: dict[str, Any]) -> None:
        expected = {
            "format": CHECKPOINT_FORMAT,
            "method": self.method,
            "divergence": self.divergence.name,
            "seed": self.seed,
            "iterations": self.iterations,
            "engine": self.settings.engine,
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise ToyTrainingError(
                    f"checkpoint was written by a different run ({key} = {state.get(key)!r}, this run has "
                    f"{value!r}); delete it or use another --out-dir"
                )
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
        checkpoint_path: str | Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Train to ``iterations``, resuming from ``checkpoint_path`` if it exists."""
        # The newest readable checkpoint (a damaged newest one falls back to the previous one).
        found = None if checkpoint_path is None else load_checkpoint(checkpoint_path, "toy checkpoint")
        if found is not None:
            state, used = found
            if not isinstance(state, dict):
                raise ToyTrainingError(
                    f"{str(used)!r} is not a febm toy checkpoint; delete it or use another --out-dir"
                )
            if state.get("settings") == self.settings_fingerprint():
                self.load_state(state)
            else:  # other toy.train settings or mixture (a config edit): its numbers do not belong here
                print(
                    f"febm: warning: {used} was trained with other toy settings; starting over",
                    file=sys.stderr,
                )
        start = time.perf_counter()
        try:
            while self.step < self.iterations:
                self.train_step()
                if progress is not None:
                    progress(self.step)
                if checkpoint_path is not None and (
                    self.step % self.settings.checkpoint_every == 0 or self.step == self.iterations
                ):
                    save_checkpoint(
                        checkpoint_path, self.state(self.wall_before + time.perf_counter() - start)
                    )
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
