"""Every generator and discriminator on odd sizes, forward and backward; save/load round trip."""

import pytest
import torch

from colorize.checkpoint import load_model, save_model
from colorize.models import (
    GENERATOR_NAMES,
    ModelConfig,
    build_discriminator,
    build_generator,
    set_dropout_sampling,
)

torch.set_num_threads(1)

SIZES = [(1, 1), (3, 500), (37, 53)]


def _config(generator: str, **overrides) -> ModelConfig:
    values = dict(generator=generator, base_channels=4, depth=5, max_channels=16, discriminator_channels=4)
    values.update(overrides)
    return ModelConfig(**values)


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_generator_any_size_forward_backward(name):
    torch.manual_seed(0)
    generator = build_generator(_config(name)).train()
    for height, width in SIZES:
        lightness = (torch.rand(2, 1, height, width) * 2 - 1).requires_grad_(True)
        ab = generator(lightness)
        assert ab.shape == (2, 2, height, width)
        assert ab.abs().max() <= 1.0
        generator.zero_grad()
        ab.square().mean().backward()
        grads = [p.grad for p in generator.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert torch.isfinite(lightness.grad).all()


@pytest.mark.parametrize("name", ["unet", "resunet", "encdec"])
def test_unet_pads_level_by_level_and_matches_whole_padding_on_exact_multiples(name):
    torch.manual_seed(0)
    generator = build_generator(_config(name, noise_channels=4)).eval()
    assert generator.pads_per_level and generator.size_multiple == 32
    seen = []
    generator.down[0].register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape[-2:])))

    with torch.no_grad():
        generator(torch.zeros(1, 1, 40, 52))
        assert seen[-1] == (40, 52)  # not 64x64: only odd sides get one replicated row / column
        assert generator.padded_input_shape(40, 52) == (40, 52)
        generator(torch.zeros(1, 1, 37, 53))
        assert seen[-1] == (38, 54)

        # a training crop (sides multiples of 2^depth): the same computation as padding the input whole
        crop = torch.rand(2, 1, 64, 96) * 2 - 1
        per_level = generator(crop)
        noisy = generator(crop, noise=torch.Generator().manual_seed(1))
        generator.pads_per_level = False
        assert generator.padded_input_shape(40, 52) == (64, 64)
        assert torch.equal(generator(crop), per_level)
        assert torch.equal(generator(crop, noise=torch.Generator().manual_seed(1)), noisy)
        # on other sizes the two differ (what the deep layers see at the edge), both crop back exactly
        odd = torch.rand(1, 1, 37, 53) * 2 - 1
        whole = generator(odd)
        generator.pads_per_level = True
        assert generator(odd).shape == whole.shape == (1, 2, 37, 53)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("conditional", [True, False])
def test_discriminator_any_size_forward_backward(conditional, norm):
    torch.manual_seed(0)
    discriminator = build_discriminator(_config("unet", conditional=conditional, discriminator_norm=norm)).train()
    for height, width in SIZES + [(32, 32)]:
        lightness = torch.rand(2, 1, height, width)
        ab = (torch.rand(2, 2, height, width) * 2 - 1).requires_grad_(True)
        scores = discriminator(lightness, ab)
        assert scores.dim() == 4 and scores.shape[:2] == (2, 1) and scores.numel() >= 2
        discriminator.zero_grad()
        scores.mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in discriminator.parameters() if p.grad is not None)
        assert ab.grad.abs().sum() > 0


def test_conditional_discriminator_sees_lightness():
    torch.manual_seed(0)
    ab = torch.rand(1, 2, 32, 32)
    lightness = torch.rand(1, 1, 32, 32)
    conditional = build_discriminator(_config("unet", conditional=True)).eval()
    unconditional = build_discriminator(_config("unet", conditional=False)).eval()
    assert not torch.equal(conditional(lightness, ab), conditional(-lightness, ab))
    assert torch.equal(unconditional(lightness, ab), unconditional(-lightness, ab))


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_saved_and_loaded_model_gives_identical_outputs(tmp_path, name):
    torch.manual_seed(1)
    config = _config(name)
    generator = build_generator(config)
    # move batch-norm statistics away from their initial values, as training does
    generator.train()
    with torch.no_grad():
        generator(torch.rand(4, 1, 40, 40) * 2 - 1)
    generator.eval()
    save_model(tmp_path / "model", generator, config, metadata={"note": "test"})
    loaded, saved_config = load_model(tmp_path / "model")
    assert saved_config["note"] == "test" and saved_config["model"]["generator"] == name
    lightness = torch.rand(2, 1, 37, 53) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generator(lightness), loaded(lightness))
    # dropout sampling: the same seed gives the same sample in both copies
    set_dropout_sampling(generator, True)
    set_dropout_sampling(loaded, True)
    with torch.no_grad():
        torch.manual_seed(5)
        first = generator(lightness)
        torch.manual_seed(5)
        assert torch.equal(first, loaded(lightness))
