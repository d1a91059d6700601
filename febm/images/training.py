"""One training iteration of f-EBM (Algorithm 1) or contrastive divergence on images.

f-EBM, per iteration (docs/original-code.md §2):

1. a batch of data x+ (dequantised) with labels, chain starts from the replay buffer (5% noise);
2. one power iteration of every spectral norm of E and H (the original: once per session run);
3. one Langevin run from the starts on E -> model samples x- (detached);
4. warm-up iterations (the first ``warmup_iterations``): only the L2 output penalties are minimised,
   and the samples are not stored;
5. otherwise the H step (``variational_loss``, an Adam step on H), then the E step with H's outputs
   recomputed by the updated H (``energy_loss``, Eq. 18; an Adam step on E); x- enters the buffer.
   With ``second_sampler_run`` the E step gets its own sampler run from the same starts with fresh
   noise (and its own power iteration), as the original code; Algorithm 1 shares one run.

CD: one sampler run, ``contrastive_divergence_loss`` on E, one Adam step, no warm-up.

Dual form (Theorem 1, Section 3.1.2): the second network is a critic v (T = f'(exp v)); after the same
warm-up, per iteration one sampler run, a critic step up the bound of Eq. 12 (``dual_critic_loss``), then
an E step with the updated critic's rewards on x- (``dual_energy_loss``): E never sees the data.

Outputs of E and H are checked every iteration: NaN/inf or any |value| above ``energy_limit`` raise
:class:`TrainingDivergedError` before any optimiser step, so the last checkpoint stays the last good one.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from febm.divergences import get_divergence
from febm.errors import FebmError
from febm.images.data import ImageData, batch_indices, dequantise
from febm.images.networks import ResNet32Energy, build_energy_network
from febm.images.replay import ReplayBuffer
from febm.images.sampler import langevin_with, precision_context
from febm.images.settings import TrainSettings
from febm.images.spectral import power_iteration_
from febm.objectives import (
    Objective,
    contrastive_divergence_loss,
    dual_critic_loss,
    dual_energy_loss,
    energy_loss,
    l2_penalty,
    variational_loss,
)
from febm.optim import ORIGINAL_ADAM, ClippedAdam
from febm.runspec import IMAGE_METHODS as METHODS

# What rank 0's checkpoint file carries for every rank (ImageTrainer.shared_state); "best": the best-IS
# checkpoint so far (febm.images.monitor.BestCheckpoint), present only where that selection is on.
SHARED_STATE_KEYS = ("energy", "variational", "optimiser_energy", "optimiser_variational", "best")


class TrainingDivergedError(FebmError):
    """Energies became NaN/inf or exploded; the run stops and keeps its last good checkpoint."""


class ImageTrainer:
    """Holds both networks, optimisers, replay buffer and RNG; :meth:`step` runs one iteration."""

    def __init__(
        self,
        settings: TrainSettings,
        data: ImageData,
        device: torch.device | str = "cpu",
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if settings.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {settings.method!r}")
        if data.images.shape[1] != settings.network.image_channels:
            raise ValueError(
                f"the data has {data.images.shape[1]} channel(s), the network "
                f"{settings.network.image_channels}: pass image_channels to TrainSettings.from_config"
            )
        self.settings = settings
        self.device = torch.device(device)
        self.data = data
        self.rank = rank
        self.divergence = get_divergence(settings.divergence, exp_clamp=settings.exp_clamp)
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        # Same seed on every rank: identical initial networks (DDP also broadcasts rank 0's).
        torch.manual_seed(settings.seed)
        self.energy = self._build()
        # f-EBM's H, or the dual form's critic
        self.variational = self._build() if settings.method in ("febm", "dual") else None
        self.optimiser_energy = self._optimiser(self.energy)
        self.optimiser_variational = self._optimiser(self.variational) if self.variational else None
        self.energy_call: nn.Module = self._distributed(self.energy, world_size)
        self.variational_call = self._distributed(self.variational, world_size) if self.variational else None
        image_shape = tuple(data.images.shape[1:])
        self.buffer = ReplayBuffer(
            settings.replay_capacity,
            image_shape,
            storage=settings.replay_storage,
            device=self.device,
            relabel=settings.replay_relabel,
            original_quantisation=settings.replay_original_quantisation,
        )
        self.generator = torch.Generator(self.device).manual_seed(settings.seed * 7919 + rank)
        self.iteration = 0
        self.last_negatives: Tensor | None = None
        # Best-IS selection (febm.images.monitor.BestCheckpoint.state): score, iteration, the energy
        # network and the replay chains at that point; None until the first scoring. Part of the state,
        # so a resumed run keeps its best.
        self.best: dict[str, Any] | None = None

    # --- construction ---------------------------------------------------------------------------
    def _build(self) -> ResNet32Energy:
        return build_energy_network(self.settings.network).to(self.device, memory_format=self.memory_format)

    def _optimiser(self, network: nn.Module) -> ClippedAdam:
        s = self.settings
        return ClippedAdam(
            network.parameters(),
            lr=s.lr,
            betas=s.betas,
            eps=s.eps,
            clip_std=s.grad_clip_std,
            clip_floor=s.grad_clip_floor,
            convention=ORIGINAL_ADAM,  # the original's custom_adam.py (docs/original-code.md section 6)
        )

    def _distributed(self, network: nn.Module, world_size: int) -> nn.Module:
        if world_size <= 1:
            return network
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers (spectral-norm vectors) are synced once at construction, then updated identically on
        # every rank by the power iteration; a per-forward broadcast would only cost time.
        return DistributedDataParallel(network, device_ids=device_ids, forward_sync_buffers=False)

    # --- pieces of one iteration ----------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return self.settings.network.num_classes > 0

    def _data_batch(self) -> tuple[Tensor, Tensor | None]:
        s = self.settings
        indices = batch_indices(len(self.data), s.batch_size, self.iteration, s.seed, self.rank)
        indices = indices.to(self.data.images.device)
        x = dequantise(self.data.images[indices].to(self.device), self.generator)
        y = self.data.labels[indices].to(self.device) if self.conditional else None
        return x, y

    def _sample(self, starts: Tensor, labels: Tensor | None) -> Tensor:
        return langevin_with(
            self.settings.sampler,
            self.energy,
            starts,
            labels,
            generator=self.generator,
            precision=self.settings.precision,
            channels_last=self.settings.channels_last,
        )

    def _outputs(
        self, network: nn.Module, x_pos: Tensor, y_pos: Tensor | None, x_neg: Tensor, y_neg: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """One forward pass over data and samples together (one DDP forward per backward)."""
        x = torch.cat([x_pos, x_neg]).contiguous(memory_format=self.memory_format)
        y = torch.cat([y_pos, y_neg]) if y_pos is not None and y_neg is not None else None
        with precision_context(self.device.type, self.settings.precision):
            out = network(x, y).float()
        self._check_outputs(out, network)
        return out[: x_pos.shape[0]], out[x_pos.shape[0] :]

    def _check_outputs(self, out: Tensor, network: nn.Module) -> None:
        second = "critic v" if self.settings.method == "dual" else "variational H"
        name = "energy E" if network in (self.energy, self.energy_call) else second
        worst = out.detach().abs().max()
        if not torch.isfinite(worst) or worst > self.settings.energy_limit:
            raise TrainingDivergedError(
                f"{name} output reached {worst.item():.4g} at iteration {self.iteration} "
                f"(limit images.*.training.energy_limit = {self.settings.energy_limit:g}); training diverged"
            )

    @staticmethod
    def _descend(objective: Objective, optimiser: ClippedAdam, iteration: int) -> None:
        objective.check_finite(iteration)
        optimiser.zero_grad(set_to_none=True)
        objective.total.backward()
        optimiser.step()

    # --- the iteration --------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Run iteration ``self.iteration`` and advance it; returns the logged scalars."""
        started = time.perf_counter()
        s = self.settings
        x_pos, y_pos = self._data_batch()
        starts, y_neg = self.buffer.chain_starts(
            y_pos, s.batch_size, reinit_prob=s.replay_reinit_prob, generator=self.generator
        )
        power_iteration_(self.energy)
        if self.variational is not None:
            power_iteration_(self.variational)
        x_neg = self._sample(starts, y_neg)
        if s.method == "cd":
            row = self._cd_step(x_pos, y_pos, x_neg, y_neg)
        elif self.iteration < s.warmup_iterations:
            row = self._warmup_step(x_pos, y_pos, x_neg, y_neg)
        elif s.method == "dual":
            row = self._dual_step(x_pos, y_pos, x_neg, y_neg)
        else:
            row = self._febm_step(x_pos, y_pos, x_neg, y_neg, starts)
        row = {"iteration": float(self.iteration), **row, "seconds": time.perf_counter() - started}
        self.iteration += 1
        return row

    def _cd_step(self, x_pos, y_pos, x_neg, y_neg) -> dict[str, float]:
        e_pos, e_neg = self._outputs(self.energy_call, x_pos, y_pos, x_neg, y_neg)
        objective = contrastive_divergence_loss(e_pos, e_neg, l2=self.settings.l2_coeff)
        self._descend(objective, self.optimiser_energy, self.iteration)
        self._remember(x_neg, y_neg)
        return {"loss_e": float(objective.total.detach()), **_means(e_pos=e_pos, e_neg=e_neg)}

    def _warmup_step(self, x_pos, y_pos, x_neg, y_neg) -> dict[str, float]:
        l2 = self.settings.l2_coeff
        h_pos, h_neg = self._outputs(self.variational_call, x_pos, y_pos, x_neg, y_neg)
        self._descend(Objective(l2 * l2_penalty(h_pos, h_neg)), self.optimiser_variational, self.iteration)
        e_pos, e_neg = self._outputs(self.energy_call, x_pos, y_pos, x_neg, y_neg)
        self._descend(Objective(l2 * l2_penalty(e_pos, e_neg)), self.optimiser_energy, self.iteration)
        self.last_negatives = x_neg  # shown in grids, but not stored: the buffer fills after warm-up
        return {"warmup": 1.0, **_means(e_pos=e_pos, e_neg=e_neg, h_pos=h_pos, h_neg=h_neg)}

    def _febm_step(self, x_pos, y_pos, x_neg, y_neg, starts) -> dict[str, float]:
        s = self.settings
        two_runs = s.second_sampler_run
        # H step. E's outputs enter H's loss detached; in the one-run recipe they are reused by the E step.
        with torch.set_grad_enabled(not two_runs):
            e_pos, e_neg = self._outputs(self.energy_call, x_pos, y_pos, x_neg, y_neg)
        h_pos, h_neg = self._outputs(self.variational_call, x_pos, y_pos, x_neg, y_neg)
        objective_h = variational_loss(self.divergence, h_pos, e_pos, h_neg, e_neg, l2=s.l2_coeff)
        self._descend(objective_h, self.optimiser_variational, self.iteration)
        if two_runs:
            power_iteration_(self.energy)
            power_iteration_(self.variational)
            x_neg = self._sample(starts, y_neg)
            e_pos, e_neg = self._outputs(self.energy_call, x_pos, y_pos, x_neg, y_neg)
        # E step with H recomputed after its update.
        with torch.no_grad():
            h_pos, h_neg = self._outputs(self.variational, x_pos, y_pos, x_neg, y_neg)
        objective_e = energy_loss(self.divergence, e_pos, h_pos, e_neg, h_neg, l2=s.l2_coeff)
        self._descend(objective_e, self.optimiser_energy, self.iteration)
        self._remember(x_neg, y_neg)
        return {
            "loss_h": float(objective_h.total.detach()),
            "loss_e": float(objective_e.total.detach()),
            "bound": float(objective_e.terms["bound"]),
            **_means(e_pos=e_pos, e_neg=e_neg, h_pos=h_pos, h_neg=h_neg),
        }

    def _dual_step(self, x_pos, y_pos, x_neg, y_neg) -> dict[str, float]:
        l2 = self.settings.l2_coeff
        v_pos, v_neg = self._outputs(self.variational_call, x_pos, y_pos, x_neg, y_neg)
        objective_v = dual_critic_loss(self.divergence, v_pos, v_neg, l2=l2)
        self._descend(objective_v, self.optimiser_variational, self.iteration)
        with torch.no_grad():  # the updated critic's rewards, as f-EBM's E step uses the updated H
            v_pos, v_neg = self._outputs(self.variational, x_pos, y_pos, x_neg, y_neg)
        # E on the data only for the log (its loss has no data term; DDP needs one forward per backward)
        e_pos, e_neg = self._outputs(self.energy_call, x_pos, y_pos, x_neg, y_neg)
        objective_e = dual_energy_loss(self.divergence, e_neg, v_neg, l2=l2)
        self._descend(objective_e, self.optimiser_energy, self.iteration)
        self._remember(x_neg, y_neg)
        return {
            "loss_h": float(objective_v.total.detach()),
            "loss_e": float(objective_e.total.detach()),
            "bound": float(objective_v.terms["bound"].detach()),
            **_means(e_pos=e_pos, e_neg=e_neg, h_pos=v_pos, h_neg=v_neg),
        }

    def _remember(self, x_neg: Tensor, y_neg: Tensor | None) -> None:
        self.buffer.push(x_neg, y_neg)
        self.last_negatives = x_neg

    # --- state ----------------------------------------------------------------------------------
    def shared_state(self) -> dict[str, Any]:
        """Identical on every rank: networks and optimisers (rank 0 saves it)."""
        state: dict[str, Any] = {
            "energy": self.energy.state_dict(),
            "optimiser_energy": self.optimiser_energy.state_dict(),
        }
        if self.variational is not None:
            state["variational"] = self.variational.state_dict()
            state["optimiser_variational"] = self.optimiser_variational.state_dict()
        if self.best is not None:
            state["best"] = self.best
        return state

    def local_state(self) -> dict[str, Any]:
        """Per rank: replay buffer, generator (the iteration is the checkpoint file's own field)."""
        return {
            "replay": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.energy.load_state_dict(state["energy"])
        self.optimiser_energy.load_state_dict(state["optimiser_energy"])
        if self.variational is not None:
            self.variational.load_state_dict(state["variational"])
            self.optimiser_variational.load_state_dict(state["optimiser_variational"])
        self.buffer.load_state_dict(state["replay"])
        self.generator.set_state(state["generator"])
        self.iteration = int(state["iteration"])
        self.best = state.get("best")


def _means(**outputs: Tensor) -> dict[str, float]:
    return {f"{name}_mean": float(value.detach().mean()) for name, value in outputs.items()}
