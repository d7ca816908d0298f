"""GAN objectives, the WGAN gradient penalty on an analytic case, and the L1 term."""

import math

import pytest
import torch
from torch import nn

from colorize.losses import (
    OBJECTIVES,
    build_objective,
    critic_from_inputs,
    critic_inputs,
    gradient_penalty,
    l1_loss,
)
from colorize.models import ModelConfig, build_discriminator, build_generator

torch.set_num_threads(1)


class LinearCritic(nn.Module):
    """D(L, ab) = w_L . L + w_ab . ab per sample, returned as a (B, 1, 1, 1) score map."""

    def __init__(self, w_l: torch.Tensor | None, w_ab: torch.Tensor, conditional: bool) -> None:
        super().__init__()
        self.conditional = conditional
        self.w_l = nn.Parameter(w_l) if w_l is not None else None
        self.w_ab = nn.Parameter(w_ab)

    def forward(self, lightness, ab):
        score = (self.w_ab * ab).flatten(1).sum(1)
        if self.conditional:
            score = score + (self.w_l * lightness).flatten(1).sum(1)
        return score.view(-1, 1, 1, 1)


def test_gradient_penalty_of_linear_critic_is_analytic():
    torch.manual_seed(0)
    w_ab = torch.randn(2, 5, 7)
    w_ab = w_ab * (3.0 / w_ab.norm())  # |w| = 3 -> penalty (3 - 1)^2 = 4
    critic = LinearCritic(None, w_ab, conditional=False)
    real, fake = torch.randn(4, 2, 5, 7), torch.randn(4, 2, 5, 7)
    penalty = gradient_penalty(critic_from_inputs(critic), real, fake)
    assert penalty.item() == pytest.approx(4.0, rel=1e-5)
    # differentiable in the critic's weights: d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    penalty.backward()
    assert torch.allclose(critic.w_ab.grad, 2 * (3.0 - 1) * critic.w_ab.detach() / 3.0, atol=1e-5)


def test_gradient_penalty_includes_the_conditioning_lightness():
    torch.manual_seed(0)
    w_l, w_ab = torch.full((1, 4, 4), 0.5), torch.full((2, 4, 4), 0.25)
    critic = LinearCritic(w_l, w_ab, conditional=True)
    lightness = torch.randn(3, 1, 4, 4)
    real = critic_inputs(critic, lightness, torch.randn(3, 2, 4, 4))
    fake = critic_inputs(critic, lightness, torch.randn(3, 2, 4, 4))
    assert real.shape == (3, 3, 4, 4)
    norm = math.sqrt(16 * 0.5**2 + 32 * 0.25**2)  # |(w_L, w_ab)| = sqrt(4 + 2)
    assert gradient_penalty(critic_from_inputs(critic), real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    # a critic with unit gradient norm is not penalised
    unit = LinearCritic(w_l / norm, w_ab / norm, conditional=True)
    assert gradient_penalty(critic_from_inputs(unit), real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_is_taken_at_interpolates():
    """A quadratic critic D(x) = |x|^2 / 2 has gradient x: the penalty depends on where x_hat is."""

    def critic(x):
        return 0.5 * x.square().flatten(1).sum(1)

    real, fake = torch.full((2, 1, 1, 1), 3.0), torch.full((2, 1, 1, 1), 1.0)
    for alpha, expected in ((1.0, (3 - 1) ** 2), (0.0, 0.0), (0.5, (2 - 1) ** 2)):
        penalty = gradient_penalty(critic, real, fake, alpha=torch.full((2,), alpha))
        assert penalty.item() == pytest.approx(expected)


def test_objective_values_on_known_scores():
    zeros = torch.zeros(2, 1, 3, 3)
    assert build_objective("vanilla").discriminator_loss(zeros, zeros).item() == pytest.approx(math.log(2))
    assert build_objective("vanilla").generator_loss(zeros).item() == pytest.approx(math.log(2))
    ones = torch.ones(2, 1, 3, 3)
    assert build_objective("lsgan").discriminator_loss(ones, zeros).item() == pytest.approx(0.0)
    assert build_objective("lsgan").discriminator_loss(zeros, ones).item() == pytest.approx(1.0)
    assert build_objective("lsgan").generator_loss(zeros).item() == pytest.approx(1.0)
    wgan = build_objective("wgan-gp")
    assert wgan.discriminator_loss(ones * 2, ones * 5).item() == pytest.approx(3.0)
    assert wgan.generator_loss(ones * 5).item() == pytest.approx(-5.0)
    with pytest.raises(ValueError, match="Unknown GAN objective"):
        build_objective("hinge")


@pytest.mark.parametrize("mode", list(OBJECTIVES))
def test_each_objective_gives_finite_gradients_to_both_networks(mode):
    torch.manual_seed(0)
    norm = "instance" if mode == "wgan-gp" else "batch"
    config = ModelConfig(base_channels=4, depth=3, discriminator_channels=4, discriminator_norm=norm)
    generator, discriminator = build_generator(config).train(), build_discriminator(config).train()
    objective = build_objective(mode)
    lightness, ab = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 2, 32, 32) * 2 - 1
    fake = generator(lightness)

    d_loss = objective.discriminator_loss(discriminator(lightness, ab), discriminator(lightness, fake.detach()))
    if objective.uses_gradient_penalty:
        penalty = gradient_penalty(
            critic_from_inputs(discriminator),
            critic_inputs(discriminator, lightness, ab),
            critic_inputs(discriminator, lightness, fake),
        )
        assert torch.isfinite(penalty) and penalty > 0
        d_loss = d_loss + 10 * penalty
    d_loss.backward()
    d_grads = [p.grad for p in discriminator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in d_grads)
    assert sum(g.abs().sum() for g in d_grads) > 0
    assert all(p.grad is None for p in generator.parameters())  # fake was detached

    discriminator.zero_grad()
    g_loss = objective.generator_loss(discriminator(lightness, fake)) + 100 * l1_loss(fake, ab)
    g_loss.backward()
    g_grads = [p.grad for p in generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in g_grads)


def test_l1_loss_is_mean_absolute_error():
    predicted, target = torch.zeros(1, 2, 2, 2), torch.tensor([1.0, -1.0, 0.5, 0.0] * 2).view(1, 2, 2, 2)
    assert l1_loss(predicted, target).item() == pytest.approx(0.625)
