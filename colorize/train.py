"""`python -m colorize.train`: L1 pre-training, then conditional-GAN training of a colorizer.

    python -m colorize.train --data DIR [--data DIR2 ...] --val DIR --out runs/NAME [flags]
    python -m colorize.train --out runs/NAME --resume          # continue where it stopped
    torchrun --nproc_per_node=4 -m colorize.train ...           # several GPUs (DDP)

Every flag is a field of `colorize.config.TrainConfig` / `ModelConfig` (`--help` lists them);
`--config run.toml` supplies values and flags override them.

The output folder holds `model.safetensors` + `config.json` (the fp32 weights users load with
`colorize.load_model`, with a training summary), `training_state.pt` (everything `--resume`
needs: both networks, both optimisers, epoch, position in the epoch, RNG states),
`samples/epoch_XXX.png` (rows: gray input | generated | real, on fixed validation images)
and `metrics.csv` (one row per epoch). With `--ema-decay` the generator's weights are also
averaged over the steps (an exponential moving average) and that average is what is validated,
sampled and saved as model.safetensors: single steps of a GAN, or of a fine-tune, move the
colours around more than the average does. Every file is replaced atomically, so a kill at any
moment leaves the last good checkpoint. Ctrl-C or SIGTERM finishes the current step, writes
a checkpoint and exits; a second Ctrl-C exits at once.

Resuming is exact: the data order of an epoch comes from (seed, epoch), each image's
augmentation from (seed, epoch, index), and the dropout RNG is restored, so an interrupted
and resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import logging
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from . import fastpath, metrics
from .checkpoint import (
    CONFIG_FILE,
    TRAINING_STATE_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_model,
    load_training_state,
    save_model,
    save_training_state,
)
from .color import AB_SCALE, rgb_from_normalized
from .config import OPTIONS, ConfigError, TrainConfig, config_from_settings, explicit_settings, flatten
from .data import ColorizationDataset, DatasetError, EpochSampler
from .devices import DeviceError, describe_device, resolve_device, unwrap
from .losses import (
    RECONSTRUCTION_LOSSES, bin_prior, build_objective, colour_bins_loss, critic_from_inputs, critic_inputs,
    gradient_penalty, rebalancing_weights,
)
from .hints import encode_hints, simulate_training_hints
from .models import (
    ModelConfig, build_discriminator, build_generator, count_parameters, load_generator_weights, load_resnet18_encoder_weights,
)
from .pixels import to_8bit

logger = logging.getLogger(__name__)

STATE_VERSION = 1
SAMPLES_DIR = "samples"
METRICS_FILE = "metrics.csv"
METRICS_COLUMNS = (
    "epoch", "step", "phase", "l1", "l2", "g_gan", "d_loss", "gp", "d_real", "d_fake",
    "val_l1", "val_psnr", "val_colorfulness_ratio", "images_per_s", "wall_time_s", "diversity", "val_diversity",
    "colour_ce", "val_l1_hints", "val_psnr_hints",
)
VALIDATION_HINTS = 10  # points per validation image for the val_*_hints columns of a hint-taking model
VALIDATION_HINT_SEED = 10
# Settings that bound or place one session; `--resume` does not inherit them from the saved run.
DIVERSITY_GRID = 8  # the diversity term compares the two draws' mean ab on an 8x8 grid of regions
PRIOR_IMAGES = 1024  # training crops whose colours set the bins head's rebalancing weights
SESSION_SETTINGS = ("max_steps", "time_limit", "resume", "device", "num_workers", "log_every")


# ----------------------------------------------------------------------------- helpers


def _rng_state(device: torch.device) -> dict[str, Any]:
    version, keys, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _ignore_signals_in_worker(_: int) -> None:
    # Ctrl-C reaches the whole process group; the main process handles it (finish the step,
    # save), so a worker must not die under it. Workers exit by themselves when the main one does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StopRequest:
    """SIGINT/SIGTERM set a flag the loop checks between steps; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.reason == "interrupted" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "interrupted"
        logger.warning("Stopping after this step and writing a checkpoint (Ctrl-C again to quit at once).")

    def __enter__(self) -> "StopRequest":
        if threading_is_main():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- the trainer


class Trainer:
    """One training run (or its resumption). `run()` returns the training summary."""

    def __init__(self, config: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self.rank, self.world_size, local_rank = _distributed_rank()
        self.distributed = dist.is_available() and dist.is_initialized()
        self.is_main = self.rank == 0
        self.device = resolve_device(config.device, local_rank=local_rank)
        # bf16 autocast where the hardware has it: on a CPU with AVX512-BF16 a GAN step takes half the time
        self.use_amp = config.amp and (
            self.device.type == "cuda" or (self.device.type == "cpu" and fastpath.cpu_info().native_bf16)
        )
        self.channels_last = self.device.type == "cuda"
        if config.resume and resume_state is None:
            resume_state = load_training_state(self.out)
        self.resume_state = resume_state

        model_config = config.model
        if config.gan_mode == "wgan-gp" and config.uses_gan and model_config.discriminator_norm == "batch":
            logger.info("wgan-gp: the critic uses instance norm instead of batch norm (the gradient penalty is per sample).")
            model_config = dataclasses.replace(model_config, discriminator_norm="instance")
        self.model_config = model_config

        self._load_data()
        self._build_models()

        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0
        self.global_step = 0
        self.wall_time_before = 0.0
        self.last_losses: dict[str, float] = {}
        self.last_val: dict[str, float] = {}
        if resume_state is not None:
            self._load_state(resume_state)
        elif self.distributed:
            # one dropout stream per process; the weights were built identically from `seed`
            torch.manual_seed(config.seed + self.rank)
        self._wrap_distributed()

    # -- set-up

    def _load_data(self) -> None:
        config = self.config
        if not config.data:
            raise ConfigError("No training data was given; pass --data FOLDER (repeat for several).")
        if not config.val:
            raise ConfigError("No validation folder was given; pass --val FOLDER.")
        if not Path(config.val).is_dir():
            raise ConfigError(f"The validation folder {config.val} does not exist.")
        self.train_data = ColorizationDataset(
            config.data,
            image_size=config.image_size,
            train=True,
            exclude=config.exclude,
            max_images=config.max_images,
            preload=config.preload,
            gray_threshold=config.gray_threshold,
            seed=config.seed,
            progress=self.is_main,
        )
        skipped = ", ".join(f"{n} {reason}" for reason, n in self.train_data.skipped.items() if n) or "none"
        logger.info("Training images: %d (skipped: %s)", len(self.train_data), skipped)
        self.val_data = None
        if self.is_main:
            self.val_data = ColorizationDataset(
                config.val,
                image_size=config.image_size,
                train=False,
                exclude=config.exclude,
                max_images=config.val_images,
                gray_threshold=config.gray_threshold,
                seed=0,
            )
            logger.info("Validation images: %d", len(self.val_data))
            items = [self.val_data[i] for i in range(len(self.val_data))]
            self.val_l = torch.stack([item[0] for item in items])
            self.val_ab = torch.stack([item[1] for item in items])

        per_rank = math.ceil(len(self.train_data) / self.world_size)
        self.batch_size = config.batch_size
        if per_rank < self.batch_size:
            logger.warning("Only %d training images per process: batch size %d -> %d.", per_rank, self.batch_size, per_rank)
            self.batch_size = per_rank
        self.sampler = EpochSampler(
            len(self.train_data), seed=config.seed, shuffle=True, rank=self.rank, world_size=self.world_size,
            folders=self.train_data.folder_items(), shares=config.folder_shares or None,
        )
        if self.sampler.draws is not None:
            logger.info("Each epoch's %d crops by folder: %s", len(self.train_data), "; ".join(
                f"{folder} {draws} ({draws / max(1, len(items)):.2f} per photo)"
                for folder, items, draws in zip(config.data, self.sampler.folders, self.sampler.draws)
            ))
        self.batches_per_epoch = self.sampler.per_rank // self.batch_size
        self.loader = DataLoader(
            self.train_data,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=config.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            persistent_workers=config.num_workers > 0,
            worker_init_fn=_ignore_signals_in_worker if config.num_workers > 0 else None,
            # its own generator: building an iterator must not draw from the global RNG (exact resume)
            generator=torch.Generator().manual_seed(config.seed),
        )

    def _build_models(self) -> None:
        config = self.config
        _seed_everything(config.seed)
        self.generator = build_generator(self.model_config)
        if config.resnet18_weights and self.resume_state is None:  # a resume has its own weights
            try:
                load_resnet18_encoder_weights(self.generator, config.resnet18_weights)
            except (FileNotFoundError, ValueError) as error:
                raise ConfigError(str(error)) from None
            except Exception as error:  # an unreadable file: torch raises several types
                raise ConfigError(f"{config.resnet18_weights} cannot be read as a ResNet-18 state dict ({error}).") from None
            logger.info("ResNet-18 encoder weights loaded from %s", config.resnet18_weights)
        if config.init_from and self.resume_state is None:
            self._load_initial_generator(config.init_from)
        self.discriminator = build_discriminator(self.model_config) if config.uses_gan else None
        self.objective = build_objective(config.gan_mode) if config.uses_gan else None
        self.reconstruction = RECONSTRUCTION_LOSSES[config.reconstruction_loss]
        self.bin_weights = None
        if self.generator.predicts_bins:
            self.bin_weights = self._rebalancing_weights()
            # kept with the weights (and, by the buffer copy, the average's) for `prior_correction`;
            # a resumed run's older state without them keeps these
            self.generator.head.rebalancing_log_weights.copy_(self.bin_weights.log())
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.generator.to(self.device, memory_format=memory_format)
        self.ema = None
        if config.ema_decay > 0:
            self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = None
        if self.discriminator is not None:
            self.discriminator.to(self.device, memory_format=memory_format)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        logger.info(
            "Generator %s: %.2fM parameters%s",
            self.model_config.generator,
            count_parameters(self.generator) / 1e6,
            f"; discriminator: {count_parameters(self.discriminator) / 1e6:.2f}M" if self.discriminator is not None else " (L1 only, no discriminator)",
        )

    # The discriminator is not part of a model folder, so only these fields have to agree.
    GENERATOR_FIELDS = (
        "generator", "base_channels", "depth", "max_channels", "norm", "dropout", "dropout_layers",
        "noise_channels", "noise_levels", "noise_maps",
    )

    def _rebalancing_weights(self) -> torch.Tensor:
        """The bins head's per-bin weights, from the colours of PRIOR_IMAGES training crops spread
        over the data (the epoch-0 crops: the same in a resumed run)."""
        count = len(self.train_data)
        crops = min(PRIOR_IMAGES, count)
        indices = [(i * count) // crops for i in range(crops)]
        centres = self.generator.head.centres
        prior = torch.zeros(len(centres))
        for start in range(0, len(indices), 64):
            ab = torch.stack([self.train_data[(i, 0)][1] for i in indices[start : start + 64]])
            prior += bin_prior(F.avg_pool2d(ab, 2), centres) * len(ab)
        prior /= prior.sum()
        logger.info("Bins head: %d bins, %d of them seen in %d training crops.", len(prior), int((prior > 0).sum()), len(indices))
        return rebalancing_weights(prior).to(self.device)

    def _load_initial_generator(self, folder: str) -> None:
        try:
            source, saved = load_model(folder)
        except CheckpointError as error:
            raise ConfigError(f"init_from: {error}") from None
        saved_model = saved["model"]
        differing = [
            f"{name} {saved_model.get(name)!r} there, {getattr(self.model_config, name)!r} here"
            for name in self.GENERATOR_FIELDS
            if saved_model.get(name) != getattr(self.model_config, name)
        ]
        if differing:
            raise ConfigError(
                f"init_from: the model in {folder} has another architecture ({'; '.join(differing)}); "
                "pass the same architecture flags."
            )
        if source.hint_channels > self.generator.hint_channels:
            raise ConfigError(
                f"init_from: the model in {folder} takes more hint channels ({source.hint_channels}) than this one "
                f"({self.generator.hint_channels}); pass --hints (and --hint-propagation) as it was trained."
            )
        if source.hint_channels < self.generator.hint_channels:
            logger.info("Hint channels added to the generator of %s (their weights start at zero).", folder)
        weights = source.state_dict()
        if saved_model.get("colour_head", "regression") != self.model_config.colour_head:
            # another colour head: the body is reused and the head starts fresh
            weights = {name: value for name, value in weights.items() if not name.startswith("head.")}
            missing, _ = load_generator_weights(self.generator, weights, strict=False)
            if any(not name.startswith("head.") for name in missing):
                raise ConfigError(f"init_from: the model in {folder} lacks some of this generator's weights.")
            logger.info("A new %s colour head on the body of %s.", self.model_config.colour_head, folder)
        else:
            load_generator_weights(self.generator, weights)
        logger.info("Generator weights loaded from %s (%s steps there)", folder, saved.get("training", {}).get("steps", "?"))

    def _wrap_distributed(self) -> None:
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.generator = nn.parallel.DistributedDataParallel(self.generator, device_ids=device_ids)
            if self.discriminator is not None:
                # the critic is called several times per step (real, fake, interpolates, double
                # backward); its gradients are averaged by hand instead of by a DDP wrapper.
                for tensor in self.discriminator.state_dict().values():
                    dist.broadcast(tensor, src=0)

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"{self.out / TRAINING_STATE_FILE} was written by another version of this program.")
        if (state.get("discriminator") is None) != (self.discriminator is None):
            raise CheckpointError("The saved run and this configuration disagree on whether there is a discriminator (gan_mode / lambda_gan).")
        try:
            self.generator.load_state_dict(state["generator"])
            self.opt_g.load_state_dict(state["opt_g"])
            if (state.get("ema") is None) != (self.ema is None):
                raise CheckpointError("The saved run and this configuration disagree on ema_decay (a weight average or none).")
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            if self.discriminator is not None:
                self.discriminator.load_state_dict(state["discriminator"])
                self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(f"The saved state in {self.out} does not fit this model configuration ({str(error).splitlines()[0]}).") from None
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.wall_time_before = state.get("wall_time_s", 0.0)
        self.last_losses = dict(state.get("last_losses", {}))
        self.last_val = dict(state.get("last_val", {}))
        if state.get("batch_size") != self.batch_size or state.get("dataset_size") != len(self.train_data):
            logger.warning(
                "The data or batch size differ from the saved run (%s images, batch %s); the resume is not exact.",
                state.get("dataset_size"), state.get("batch_size"),
            )
        if self.rank == 0:
            _set_rng_state(state["rng"], self.device)
        else:
            torch.manual_seed(self.config.seed + self.rank + 7919 * self.global_step)
        logger.info("Resuming %s at epoch %d, step %d of %d in the epoch (global step %d).",
                    self.out, self.epoch + 1, self.step_in_epoch, self.batches_per_epoch, self.global_step)

    # -- one step

    def _autocast(self):
        if not self.use_amp:  # MPS, and CPUs without native bf16, train in float32
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _hint_channels(self, lightness: torch.Tensor, ab: torch.Tensor, *, generator: torch.Generator | None = None, count: int | None = None) -> torch.Tensor | None:
        """The hint channels of hints simulated from the real `ab` (None for a model without hints).
        Drawn from torch's global RNG in training (saved with the run: exact resume)."""
        if not self.model_config.hints:
            return None
        hint_ab, mask = simulate_training_hints(ab.cpu(), generator=generator, count=count)
        return encode_hints(lightness.cpu(), hint_ab, mask, propagation=self.model_config.hint_propagation).to(lightness.device)

    def _condition(self, lightness: torch.Tensor, hints: torch.Tensor | None) -> torch.Tensor:
        """What the conditional discriminator sees beside ab: what the generator saw."""
        return lightness if hints is None else torch.cat((lightness, hints.to(lightness.dtype)), dim=1)

    def _generate(self, lightness: torch.Tensor, hints: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The generator's ab for a batch, its bins head's logits (None for a regression head), and
        (with the diversity term) the batch's diversity reward.

        With `lambda_diversity` (on one step in `diversity_every`), every image goes through twice with independent noise draws: the
        returned ab holds both halves (2B images) and the reward is the mean over images of
        min(mean |ab1 - ab2|, diversity_cap), with ab1 and ab2 the draws' region means on a
        DIVERSITY_GRID x DIVERSITY_GRID grid.
        """
        noisy = unwrap(self.generator).has_injected_noise
        bins = self.bin_weights is not None
        # on the steps between diversity steps (`diversity_every`): one draw, half the work
        diversity_step = self.global_step % self.config.diversity_every == 0
        if not (noisy and self.config.lambda_diversity > 0 and diversity_step):
            output = self.generator(lightness, hints=hints, noise=True if noisy else None, with_logits=bins)
            return (*output, None) if bins else (output, None, None)
        doubled_hints = None if hints is None else torch.cat((hints, hints))
        output = self.generator(torch.cat((lightness, lightness)), hints=doubled_hints, noise=True, with_logits=bins)
        fake, logits = output if bins else (output, None)
        # Compared on a coarse grid of region means: a colour choice for a whole region counts,
        # a texture of stripes or speckle (which the network otherwise learns, being the
        # cheapest way to differ everywhere) averages out and earns nothing.
        first, second = F.adaptive_avg_pool2d(fake.float(), DIVERSITY_GRID).chunk(2)
        per_image = (first - second).abs().mean(dim=(1, 2, 3))
        return fake, logits, per_image.clamp(max=self.config.diversity_cap).mean()

    @staticmethod
    def _targets(ab: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return ab if len(fake) == len(ab) else torch.cat((ab, ab))

    def _colour_loss(self, fake: torch.Tensor, logits: torch.Tensor | None, ab: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The colour term (before lambda_l1) and what to log: L1 or L2 on ab; for a bins head, the
        rebalanced cross-entropy of its logits, with the decoded ab's L1 logged beside it."""
        targets = self._targets(ab, fake)
        if logits is None:
            loss = self.reconstruction(fake, targets)
            return loss, {self.config.reconstruction_loss: loss.detach()}
        loss = colour_bins_loss(logits, targets, unwrap(self.generator).head.centres, self.bin_weights)
        return loss, {"colour_ce": loss.detach(), "l1": (fake.detach().float() - targets).abs().mean()}

    def _average_gradients(self, module: nn.Module) -> None:
        if not self.distributed:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if grads:
            flat = torch.cat([g.flatten() for g in grads])
            dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    @torch.no_grad()
    def _update_average(self) -> None:
        """One step of the weight average: ema <- d * ema + (1 - d) * weights; buffers copied.

        The decay is min(ema_decay, (1 + n) / (10 + n)) at update n, so that the average of a run
        from scratch does not stay near its random start; the ramp reaches 0.995 only after about
        1,800 updates, so in a shorter run it is the ramp that sets the averaging window. Batch-norm running statistics are
        themselves averages of recent batches, so they are copied, not averaged again.
        """
        if self.ema is None:
            return
        updates = self.global_step + 1
        decay = min(self.config.ema_decay, (1 + updates) / (10 + updates))
        live = unwrap(self.generator)
        for average, current in zip(self.ema.parameters(), live.parameters()):
            average.lerp_(current.detach(), 1.0 - decay)
        for average, current in zip(self.ema.buffers(), live.buffers()):
            average.copy_(current)

    @property
    def exported_generator(self) -> nn.Module:
        """What validation, samples and model.safetensors use: the weight average if there is one."""
        return self.ema if self.ema is not None else unwrap(self.generator)

    def _l1_step(self, lightness: torch.Tensor, ab: torch.Tensor) -> dict[str, torch.Tensor]:
        hints = self._hint_channels(lightness, ab)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            fake, logits, diversity = self._generate(lightness, hints)
        loss, losses = self._colour_loss(fake, logits, ab)
        total = loss
        if diversity is not None:
            # in the L1 phase the loss is L1 alone (weight 1), so the reward is scaled to match
            total = total - self.config.lambda_diversity / max(self.config.lambda_l1, 1e-8) * diversity
            losses["diversity"] = diversity.detach()
        total.backward()
        self.opt_g.step()
        self._update_average()
        return losses

    def _gan_step(self, lightness: torch.Tensor, ab: torch.Tensor) -> dict[str, torch.Tensor]:
        config, discriminator, objective = self.config, self.discriminator, self.objective
        update_generator = not objective.uses_gradient_penalty or (self.global_step + 1) % config.n_critic == 0
        hints = self._hint_channels(lightness, ab)
        with torch.set_grad_enabled(update_generator), self._autocast():
            fake, logits, diversity = self._generate(lightness, hints)
        condition = self._condition(lightness, hints)
        fake_condition = condition if len(fake) == len(lightness) else torch.cat((condition, condition))

        # discriminator / critic
        discriminator.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            real_scores = discriminator(condition, ab)
            fake_scores = discriminator(fake_condition, fake.detach())
            d_loss = objective.discriminator_loss(real_scores.float(), fake_scores.float())
        losses = {"d_loss": d_loss.detach(), "d_real": real_scores.detach().float().mean(), "d_fake": fake_scores.detach().float().mean()}
        total = d_loss
        if objective.uses_gradient_penalty:
            penalty = gradient_penalty(
                critic_from_inputs(discriminator),
                critic_inputs(discriminator, condition, ab).float(),
                critic_inputs(discriminator, condition, fake[: len(lightness)].detach()).float(),
            )
            total = total + config.gp_weight * penalty
            losses["gp"] = penalty.detach()
        total.backward()
        self._average_gradients(discriminator)
        self.opt_d.step()

        # generator
        if update_generator:
            discriminator.requires_grad_(False)
            self.opt_g.zero_grad(set_to_none=True)
            with self._autocast():
                g_gan = objective.generator_loss(discriminator(fake_condition, fake).float())
            reconstruction, reconstruction_losses = self._colour_loss(fake, logits, ab)
            total = config.lambda_gan * g_gan + config.lambda_l1 * reconstruction
            if diversity is not None:
                total = total - config.lambda_diversity * diversity
                losses["diversity"] = diversity.detach()
            total.backward()
            self.opt_g.step()
            self._update_average()
            discriminator.requires_grad_(True)
            losses.update({"g_gan": g_gan.detach(), **reconstruction_losses})
        return losses

    # -- validation, samples, checkpoints

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        generator = self.exported_generator
        was_training = generator.training
        generator.eval()
        l1_sum, psnr_values, fake_colorfulness, real_colorfulness = 0.0, [], [], []
        hinted_l1_sum, hinted_psnr = 0.0, []
        # the same hints at every validation, so the columns are comparable over a run
        hint_draws = torch.Generator().manual_seed(VALIDATION_HINT_SEED)
        noisy = generator.has_injected_noise
        diversity_sum = 0.0
        # the same two draws at every validation, so the diversity column is comparable over a run
        draws = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
        try:
            for start in range(0, len(self.val_l), self.batch_size):
                lightness = self.val_l[start : start + self.batch_size].to(self.device)
                ab = self.val_ab[start : start + self.batch_size].to(self.device)
                with self._autocast():
                    fake = generator(lightness).float()
                    if noisy:
                        first, second = (generator(lightness, noise=draw).float() for draw in draws)
                        diversity_sum += float(((first - second) * AB_SCALE).abs().mean(dim=(1, 2, 3)).sum())
                    hints = self._hint_channels(lightness, ab, generator=hint_draws, count=VALIDATION_HINTS)
                    if hints is not None:
                        hinted = generator(lightness, hints=hints).float()
                        hinted_l1_sum += float((hinted - ab).abs().mean(dim=(1, 2, 3)).sum())
                        hinted_psnr += [
                            metrics.psnr(f, r)
                            for f, r in zip(rgb_from_normalized(lightness, hinted).cpu(), rgb_from_normalized(lightness, ab).cpu())
                        ]
                l1_sum += float((fake - ab).abs().mean(dim=(1, 2, 3)).sum())
                fake_rgb = rgb_from_normalized(lightness, fake).cpu()
                real_rgb = rgb_from_normalized(lightness, ab).cpu()
                for fake_image, real_image in zip(fake_rgb, real_rgb):
                    psnr_values.append(metrics.psnr(fake_image, real_image))
                    fake_colorfulness.append(metrics.colorfulness(fake_image))
                    real_colorfulness.append(metrics.colorfulness(real_image))
        finally:
            generator.train(was_training)
        return {
            "val_l1": l1_sum / len(self.val_l),
            "val_psnr": float(np.mean(psnr_values)),
            # mean colourfulness of the outputs over that of the real images (1 = as vivid as real)
            "val_colorfulness_ratio": float(np.mean(fake_colorfulness) / max(np.mean(real_colorfulness), 1e-6)),
            # mean |ab difference| (ab units) between two noise draws of a validation image
            **({"val_diversity": diversity_sum / len(self.val_l)} if noisy else {}),
            # with VALIDATION_HINTS simulated hints per image (a hint-taking model)
            **({"val_l1_hints": hinted_l1_sum / len(self.val_l), "val_psnr_hints": float(np.mean(hinted_psnr))} if hinted_psnr else {}),
        }

    @torch.no_grad()
    def write_samples(self, name: str) -> Path:
        """Grid: row 1 gray input, row 2 generated, (a hint-taking model: row 3 generated with
        VALIDATION_HINTS simulated hints,) last row real, on the first sample_images validation images."""
        generator = self.exported_generator
        was_training = generator.training
        generator.eval()
        count = min(self.config.sample_images, len(self.val_l))
        lightness = self.val_l[:count].to(self.device)
        try:
            real = self.val_ab[:count].to(self.device)
            hints = self._hint_channels(
                lightness, real, generator=torch.Generator().manual_seed(VALIDATION_HINT_SEED), count=VALIDATION_HINTS
            )
            with self._autocast():
                fake = generator(lightness).float()
                hinted = None if hints is None else generator(lightness, hints=hints).float()
        finally:
            generator.train(was_training)
        rows = [rgb_from_normalized(lightness, torch.zeros_like(fake)), rgb_from_normalized(lightness, fake)]
        if hinted is not None:
            rows.append(rgb_from_normalized(lightness, hinted))
        rows.append(rgb_from_normalized(lightness, real))
        grid = torch.cat([torch.cat(list(row.cpu()), dim=2) for row in rows], dim=1)  # (3, 3S, count*S)
        pixels = to_8bit(grid.permute(1, 2, 0).numpy())
        path = self.out / SAMPLES_DIR / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        Image.fromarray(pixels).save(temporary, format="PNG")
        os.replace(temporary, path)
        return path

    def _append_metrics(self, row: dict[str, Any]) -> None:
        path = self.out / METRICS_FILE
        new = not path.is_file() or path.stat().st_size == 0
        if not new:
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                earlier = list(reader)
                header = reader.fieldnames
            if tuple(header or ()) != METRICS_COLUMNS:
                # a run resumed by a newer version: rewrite the file under today's columns
                temporary = path.with_name(f".{path.name}.tmp")
                with open(temporary, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
                    writer.writeheader()
                    writer.writerows(earlier)
                os.replace(temporary, path)
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def _epoch_progress(self) -> float:
        """Epochs done, with the fraction of the current one: 1 at the end of epoch 1, 1.5 halfway through epoch 2."""
        return round(self.epoch + self.step_in_epoch / max(self.batches_per_epoch, 1), 4)

    def _wall_time(self) -> float:
        return self.wall_time_before + time.monotonic() - self.session_start

    def summary(self) -> dict[str, Any]:
        config = self.config
        return {
            "data": self.train_data.summary(),
            "val": self.val_data.summary() if self.val_data is not None else None,
            "exclude": list(config.exclude),
            "image_size": config.image_size,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "epochs_completed": self.epoch,
            "epochs_planned": config.epochs,
            "epochs_l1": config.epochs_l1,
            "epochs_gan": config.epochs_gan,
            "steps": self.global_step,
            "gan_mode": config.gan_mode if config.uses_gan else "none",
            "lambda_l1": config.lambda_l1,
            "lambda_gan": config.lambda_gan if config.uses_gan else 0.0,
            "ema_decay": config.ema_decay,
            "gp_weight": config.gp_weight if config.gan_mode == "wgan-gp" else None,
            "n_critic": config.n_critic if config.gan_mode == "wgan-gp" else None,
            "last_losses": self.last_losses,
            "val_metrics": self.last_val,
            "device": describe_device(self.device),
            "amp_bf16": self.use_amp,
            "wall_time_s": round(self._wall_time(), 3),  # a tiny run takes milliseconds: 0.1 s steps would say 0
            "torch_version": torch.__version__,
        }

    def save_checkpoint(self) -> None:
        """model.safetensors + config.json (fp32) and training_state.pt, each replaced atomically."""
        if not self.is_main:
            return
        state = {
            "version": STATE_VERSION,
            "generator": unwrap(self.generator).state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "batch_size": self.batch_size,
            "dataset_size": len(self.train_data),
            "sampler": {"seed": self.sampler.seed, "epoch": self.epoch, "start": self.step_in_epoch * self.batch_size},
            "rng": _rng_state(self.device),
            "wall_time_s": self._wall_time(),
            "last_losses": self.last_losses,
            "last_val": self.last_val,
            "train_config": flatten(self.config),
            "model_config": self.model_config.to_dict(),
        }
        save_training_state(self.out, state)
        metadata = {"training": self.summary(), "train_config": self.config.to_dict()}
        save_model(self.out, self.exported_generator, self.model_config, metadata=metadata)

    def _evaluate_and_record(self, *, phase: str, images_per_s: float, sample_name: str) -> None:
        if not self.is_main:
            return
        self.last_val = self.validate()
        self.write_samples(sample_name)
        self._append_metrics(
            {"epoch": self._epoch_progress(), "step": self.global_step, "phase": phase, **self.last_losses,
             **self.last_val, "images_per_s": images_per_s, "wall_time_s": self._wall_time()}
        )
        logger.info(
            "epoch %g step %d: %s | val L1 %.4f, PSNR %.2f dB, colourfulness ratio %.2f",
            self._epoch_progress(), self.global_step,
            ", ".join(f"{k} {v:.4f}" for k, v in self.last_losses.items()),
            self.last_val["val_l1"], self.last_val["val_psnr"], self.last_val["val_colorfulness_ratio"],
        )

    # -- the loop

    def _should_stop(self, stop: StopRequest) -> str | None:
        config = self.config
        reason = stop.reason
        if reason is None and config.max_steps and self.global_step >= config.max_steps:
            reason = "max_steps"
        if reason is None and config.time_limit and time.monotonic() - self.session_start >= config.time_limit:
            reason = "time_limit"
        if self.distributed:  # every process stops at the same step
            flag = torch.tensor([0 if reason is None else 1], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() and reason is None:
                reason = "another process stopped"
        return reason

    def run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        config = self.config
        self.session_start = time.monotonic()
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.generator.train()
        if self.discriminator is not None:
            self.discriminator.train()
        stopped: str | None = None
        with StopRequest() as stop:
            while self.epoch < config.epochs and stopped is None:
                phase = "gan" if self.discriminator is not None and self.epoch >= config.epochs_l1 else "l1"
                step_fn = self._gan_step if phase == "gan" else self._l1_step
                self.sampler.set_epoch(self.epoch, start=self.step_in_epoch * self.batch_size)
                sums: dict[str, torch.Tensor] = {}
                counts: dict[str, int] = {}
                epoch_start, images = time.monotonic(), 0
                last_refresh = epoch_start
                bar = tqdm(
                    total=self.batches_per_epoch, initial=self.step_in_epoch, disable=not self.is_main,
                    desc=f"epoch {self.epoch + 1}/{config.epochs} {phase}", unit="step", dynamic_ncols=True,
                )
                for lightness, ab in self.loader:
                    if self.step_in_epoch >= self.batches_per_epoch:
                        break
                    memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
                    lightness = lightness.to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
                    ab = ab.to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
                    losses = step_fn(lightness, ab)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    images += len(lightness) * self.world_size
                    bar.update()
                    for key, value in losses.items():
                        sums[key] = sums[key] + value if key in sums else value.clone()
                        counts[key] = counts.get(key, 0) + 1
                    now = time.monotonic()
                    if (
                        self.global_step % config.log_every == 0
                        or self.step_in_epoch == self.batches_per_epoch
                        or now - last_refresh > 10  # slow steps (CPU): show the losses anyway
                    ):
                        last_refresh = now
                        # epoch means so far (one device sync per log_every steps)
                        self.last_losses = {k: float(v) / counts[k] for k, v in sums.items()}
                        rate = images / max(time.monotonic() - epoch_start, 1e-9)
                        bar.set_postfix({**{k: f"{v:.3f}" for k, v in self.last_losses.items()}, "img/s": f"{rate:.1f}"})
                    stopped = self._should_stop(stop)
                    if stopped is not None:
                        self.last_losses = {k: float(v) / counts[k] for k, v in sums.items()}
                        break
                    mid_epoch = self.step_in_epoch < self.batches_per_epoch
                    if config.sample_every_steps and self.global_step % config.sample_every_steps == 0 and mid_epoch:
                        self.last_losses = {k: float(v) / counts[k] for k, v in sums.items()}
                        self._evaluate_and_record(
                            phase=phase, images_per_s=images / max(time.monotonic() - epoch_start, 1e-9),
                            sample_name=f"epoch_{self.epoch + 1:03d}_step_{self.global_step:07d}",
                        )
                    if config.save_every_steps and self.global_step % config.save_every_steps == 0 and mid_epoch:
                        self.save_checkpoint()
                bar.close()
                images_per_s = images / max(time.monotonic() - epoch_start, 1e-9)
                if self.step_in_epoch >= self.batches_per_epoch:
                    self.epoch += 1
                    self.step_in_epoch = 0
                    self._evaluate_and_record(phase=phase, images_per_s=images_per_s, sample_name=f"epoch_{self.epoch:03d}")
                    self.save_checkpoint()
                elif stopped is not None:
                    if stopped != "interrupted":
                        self._evaluate_and_record(
                            phase=phase, images_per_s=images_per_s,
                            sample_name=f"epoch_{self.epoch + 1:03d}_step_{self.global_step:07d}",
                        )
                    self.save_checkpoint()
        if self.distributed:
            dist.barrier()
        summary = self.summary()
        summary["stopped"] = stopped or "finished"
        if self.is_main:
            logger.info(
                "%s after %d steps (%d of %d epochs); checkpoint in %s",
                "Stopped (" + stopped + ")" if stopped else "Finished", self.global_step, self.epoch, config.epochs, self.out,
            )
        return summary


def _distributed_rank() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _init_distributed(device_name: str) -> bool:
    """Join the torchrun process group when launched by torchrun; True if this process did."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return False
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def train(config: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or resume) as `config` says; returns the training summary. Library errors propagate."""
    out = Path(config.out)
    if not config.resume and (out / TRAINING_STATE_FILE).exists():
        raise ConfigError(f"{out} already holds a training run; pass --resume to continue it or choose another --out.")
    return Trainer(config, resume_state=resume_state).run()


def resolve_config(argv: list[str] | None = None) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config from flags and --config; with --resume, the saved run's settings fill in the rest."""
    settings = explicit_settings(argv)
    if not settings.get("resume"):
        return config_from_settings(settings), None
    out = Path(settings.get("out", TrainConfig.out))
    state = load_training_state(out)
    saved = {k: v for k, v in state.get("train_config", {}).items() if k in OPTIONS and k not in SESSION_SETTINGS}
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    # the saved config may have had discriminator_norm switched for wgan-gp; keep the user's value
    return config_from_settings(settings, base=saved), state


def export_half(source: str | Path, destination: str | Path) -> Path:
    """Copy a checkpoint's weights as float16 (half the size) with its config, for shipping."""
    generator, config = load_model(source)
    metadata = {k: v for k, v in config.items() if k not in ("format_version", "model")}
    metadata["stored_dtype"] = "float16"
    return save_model(destination, generator, ModelConfig.from_dict(config["model"]), metadata=metadata, half_precision=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["--export-half"]:
        if len(argv) != 3:
            print("usage: python -m colorize.train --export-half RUN_DIR OUT_DIR", file=sys.stderr)
            return 2
        try:
            path = export_half(argv[1], argv[2])
        except CheckpointError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"Wrote float16 weights to {path}")
        return 0

    joined, rank = False, 0
    try:
        config, state = resolve_config(argv)
        joined = _init_distributed(config.device)
        rank = _distributed_rank()[0]
        if rank != 0:
            logging.getLogger().setLevel(logging.WARNING)
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():
            summary = train(config, resume_state=state)
    except (ConfigError, DatasetError, CheckpointError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        print(f"Checkpoint: {Path(config.out) / WEIGHTS_FILE} + {CONFIG_FILE} + {TRAINING_STATE_FILE}")
    return 130 if summary["stopped"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
