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


def critic_inputs(discriminator: nn.Module, lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """What `discriminator` sees, as one tensor: cat(L, ab) if conditional, else ab."""
    return torch.cat((lightness, ab), dim=1) if getattr(unwrap(discriminator), "conditional", True) else ab


def critic_from_inputs(discriminator: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`x -> D(x)` for the tensors of `critic_inputs` (to take gradients w.r.t. L and ab together)."""
    if getattr(unwrap(discriminator), "conditional", True):
        return lambda x: discriminator(x[:, :1], x[:, 1:])
    return lambda x: discriminator(None, x)
