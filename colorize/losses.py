"""Adversarial objectives (vanilla | lsgan | wgan-gp), the WGAN gradient penalty, and the L1 term.

A discriminator returns a map of patch scores (logits, no sigmoid). Each objective turns
real and fake score maps into a discriminator loss and a generator loss:

- vanilla: binary cross-entropy on the logits (pix2pix); the discriminator loss is halved as in pix2pix.
- lsgan:   least squares towards 1 (real) and 0 (fake); halved likewise.
- wgan-gp: the critic's mean score difference, E[D(fake)] - E[D(real)], plus a gradient
  penalty gp_weight * E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake
  inputs (`gradient_penalty`). The critic must not use batch norm (the penalty is per sample).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .color import AB_SCALE, chroma_of
from .devices import unwrap


class GANObjective:
    """Base: `discriminator_loss(real, fake)` and `generator_loss(fake)` on score maps."""

    name = ""
    uses_gradient_penalty = False

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class VanillaGAN(GANObjective):
    name = "vanilla"

    def discriminator_loss(self, real_scores, fake_scores):
        real = F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
        fake = F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
        return 0.5 * (real + fake)

    def generator_loss(self, fake_scores):
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))


class LeastSquaresGAN(GANObjective):
    name = "lsgan"

    def discriminator_loss(self, real_scores, fake_scores):
        real = F.mse_loss(real_scores, torch.ones_like(real_scores))
        fake = F.mse_loss(fake_scores, torch.zeros_like(fake_scores))
        return 0.5 * (real + fake)

    def generator_loss(self, fake_scores):
        return F.mse_loss(fake_scores, torch.ones_like(fake_scores))


class WassersteinGAN(GANObjective):
    """WGAN critic loss; add `gradient_penalty` to the critic loss for WGAN-GP."""

    name = "wgan-gp"
    uses_gradient_penalty = True

    def discriminator_loss(self, real_scores, fake_scores):
        return fake_scores.float().mean() - real_scores.float().mean()

    def generator_loss(self, fake_scores):
        return -fake_scores.float().mean()


OBJECTIVES: dict[str, type[GANObjective]] = {
    "vanilla": VanillaGAN,
    "lsgan": LeastSquaresGAN,
    "wgan-gp": WassersteinGAN,
}


def build_objective(name: str) -> GANObjective:
    try:
        return OBJECTIVES[name]()
    except KeyError:
        raise ValueError(f"Unknown GAN objective '{name}'; choose one of {', '.join(OBJECTIVES)}.") from None


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] over random interpolates x_hat = alpha real + (1 - alpha) fake.

    `real` and `fake` are the critic's whole inputs (B, C, H, W); for a conditional critic
    they are cat(L, ab), so the gradient is taken with respect to the conditioning L too.
    A patch critic's score per sample is the mean of its map (the score the WGAN loss uses).
    `alpha` (B,) defaults to uniform draws from the global torch generator. Differentiable
    (create_graph), so the penalty trains the critic.
    """
    batch = real.shape[0]
    if alpha is None:
        alpha = torch.rand(batch, device=real.device)
    alpha = alpha.to(real.dtype).view(batch, *([1] * (real.dim() - 1)))
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(interpolates).reshape(batch, -1).float().mean(dim=1)
    (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    norms = gradients.reshape(batch, -1).float().norm(2, dim=1)
    return (norms - 1.0).square().mean()


def l1_loss(predicted_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on normalised ab (the pix2pix L1 term, before lambda)."""
    return F.l1_loss(predicted_ab.float(), target_ab.float())


def l2_loss(predicted_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
    """Mean squared error on normalised ab (the ablation's alternative to L1: it averages modes, L1 takes a median)."""
    return F.mse_loss(predicted_ab.float(), target_ab.float())


RECONSTRUCTION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"l1": l1_loss, "l2": l2_loss}


def critic_inputs(discriminator: nn.Module, condition: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """What `discriminator` sees, as one tensor: cat(condition, ab) if conditional, else ab.
    `condition`: L, with the hint channels of a hint-taking generator."""
    return torch.cat((condition, ab), dim=1) if getattr(unwrap(discriminator), "conditional", True) else ab


def critic_from_inputs(discriminator: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`x -> D(x)` for the tensors of `critic_inputs` (to take gradients w.r.t. the condition and ab together)."""
    if getattr(unwrap(discriminator), "conditional", True):
        return lambda x: discriminator(x[:, :-2], x[:, -2:])
    return lambda x: discriminator(None, x)


# -- the bins colour head (Zhang et al. 2016, "Colorful Image Colorization")

SOFT_ENCODING_SIGMA = 5.0  # ab units
REBALANCING_MIX = 0.5  # weights 1 / ((1 - mix) * prior + mix / Q): rare colours count up to ~2Q times more
# the 3x3 grid offsets around a pixel's nearest bin, the bin itself first, then its four sides
_NEIGHBOURS = torch.tensor(sorted(((i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)), key=lambda o: abs(o[0]) + abs(o[1])))


def _grid(centres: torch.Tensor) -> tuple[float, int, torch.Tensor]:
    """The square grid the centres (Q, 2, in ab units) sit on: its step, its radius in steps, and a
    (2r+1, 2r+1) table from grid position to bin index (-1 where no bin is)."""
    step = float((centres[:, 0].unique().sort().values.diff().min()))
    radius = int(round(float(centres.abs().max()) / step))
    table = torch.full((2 * radius + 1, 2 * radius + 1), -1, dtype=torch.long)
    positions = (centres / step).round().long() + radius
    table[positions[:, 0], positions[:, 1]] = torch.arange(len(centres))
    return step, radius, table


def soft_encoding(target_ab: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each target pixel (B, 2, h, w, normalised ab) spread over the 3x3 bins around its nearest
    with Gaussian weights (sigma 5 ab units): bin indices and weights, both (B, 9, h, w); the
    first of the 9 is the nearest bin. Bins outside the grid get weight 0."""
    scaled = centres * AB_SCALE
    step, radius, table = _grid(scaled.cpu())
    table = table.to(target_ab.device)
    target_ab = target_ab.float()
    # the few sRGB colours beyond the bins' disc (saturated blues and purples, chroma up to 134)
    # are drawn in to its edge, where their nearest bins are
    edge = float(scaled.norm(dim=1).max()) - step / 2
    chroma = chroma_of(target_ab) * AB_SCALE
    target_ab = target_ab * edge / chroma.clamp(min=edge)
    position = (target_ab * AB_SCALE / step).round().long().clamp(-radius, radius)  # (B, 2, h, w)
    offsets = _NEIGHBOURS.to(target_ab.device)  # (9, 2), (0, 0) first
    grid_a = (position[:, 0, None] + offsets[:, 0, None, None]).clamp(-radius, radius)  # (B, 9, h, w)
    grid_b = (position[:, 1, None] + offsets[:, 1, None, None]).clamp(-radius, radius)
    index = table[grid_a + radius, grid_b + radius]
    distance2 = (grid_a * step - target_ab[:, 0:1] * AB_SCALE).square() + (grid_b * step - target_ab[:, 1:2] * AB_SCALE).square()
    weights = torch.exp(-distance2 / (2 * SOFT_ENCODING_SIGMA**2)) * (index >= 0)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return index.clamp(min=0), weights


def nearest_bins(target_ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index (B, h, w) of the bin nearest each target pixel (normalised ab, B, 2, h, w)."""
    return _nearest_of(*soft_encoding(target_ab, centres))


def bin_prior(target_ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """How often each bin is the nearest to a pixel of `target_ab` (B, 2, h, w): a distribution (Q,)."""
    counts = torch.bincount(nearest_bins(target_ab, centres).flatten(), minlength=len(centres)).double()
    return (counts / counts.sum()).float()


def rebalancing_weights(prior: torch.Tensor, mix: float = REBALANCING_MIX) -> torch.Tensor:
    """Per-bin loss weights that make rare (saturated) colours count: proportional to
    1 / ((1 - mix) * prior + mix / Q), scaled so that a pixel weighs 1 on average."""
    weights = 1.0 / ((1.0 - mix) * prior + mix / len(prior))
    return weights / (prior * weights).sum()


def colour_bins_loss(
    logits: torch.Tensor, target_ab: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of the bins head's logits (B, Q, h, w) against the target ab (B, 2, H, W),
    pooled to the logits' resolution and soft-encoded (`soft_encoding`), each pixel weighted by
    `weights` of its nearest bin (`rebalancing_weights`)."""
    if target_ab.shape[-2:] != logits.shape[-2:]:
        target_ab = F.adaptive_avg_pool2d(target_ab.float(), logits.shape[-2:])
    index, soft = soft_encoding(target_ab, centres)
    log_probabilities = F.log_softmax(logits, dim=1, dtype=torch.float32)
    per_pixel = -(soft * log_probabilities.gather(1, index)).sum(dim=1)
    if weights is not None:
        per_pixel = per_pixel * weights[_nearest_of(index, soft)]
    return per_pixel.mean()


def _nearest_of(index: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """The nearest bin (B, h, w) of a soft encoding: the one of the 9 with the most weight."""
    return index.gather(1, soft.argmax(dim=1, keepdim=True))[:, 0]
