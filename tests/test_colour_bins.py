"""The bins colour head: a distribution over ab bins decoded by an annealed mean (Zhang et al. 2016)."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data

from colorize import Colorizer, fastpath
from colorize.config import parse_args
from colorize.losses import bin_prior, colour_bins_loss, nearest_bins, rebalancing_weights, soft_encoding
from colorize.models import ModelConfig, build_generator, colour_bin_centres
from colorize.train import Trainer, main
from test_train import _args as train_args, folders  # noqa: F401 (a fixture)

torch.set_num_threads(1)


def _args(folders, out, *extra):
    """test_train's tiny run, L1 only for two epochs (later flags override earlier ones)."""
    return train_args(folders, out, "--epochs-l1", "2", "--epochs-gan", "0", "--gan-mode", "none", *extra)


def test_bin_centres_are_a_fixed_grid_covering_srgb_and_the_rest_lands_on_the_edge():
    centres = colour_bin_centres()
    assert len(centres) == 377 and torch.equal(centres, colour_bin_centres())
    assert set(torch.unique(centres).tolist()) <= {float(10 * k) for k in range(-11, 12)}
    from colorize.color import rgb_to_lab

    levels = torch.linspace(0, 1, 17)
    rgb = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij")).reshape(3, -1, 1)
    ab = rgb_to_lab(rgb)[1:, :, 0].T
    inside = ab.norm(dim=1) <= 110
    assert inside.float().mean() > 0.95
    nearest = torch.cdist(ab.double(), centres.double()).min(dim=1).values
    assert float(nearest[ab.norm(dim=1) <= 100].max()) <= 5 * 2**0.5 + 1e-6  # within half a diagonal of a bin
    assert float(nearest[inside].max()) <= 8.0  # at the disc's edge a little more
    # pure blue (chroma 134) is trained on the bin of its hue at the disc's edge
    blue = rgb_to_lab(torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1))[1:, 0, 0]
    assert float(blue.norm()) > 130
    _, weights = soft_encoding((blue / 110).view(1, 2, 1, 1), centres / 110)
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    edge = centres[nearest_bins((blue / 110).view(1, 2, 1, 1), centres / 110)[0, 0, 0]]
    assert 95 <= float(edge.norm()) <= 110
    assert float(torch.nn.functional.cosine_similarity(edge, blue, dim=0)) > 0.98


def test_soft_encoding_puts_most_weight_on_the_nearest_bin_and_sums_to_one():
    centres = colour_bin_centres() / 110
    torch.manual_seed(0)
    ab = (torch.rand(2, 2, 8, 8) - 0.5) * 1.4
    index, weights = soft_encoding(ab, centres)
    assert index.shape == weights.shape == (2, 9, 8, 8)
    assert torch.allclose(weights.sum(dim=1), torch.ones(2, 8, 8))
    brute = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), centres).argmin(dim=1).reshape(2, 8, 8)
    assert torch.equal(nearest_bins(ab, centres), brute)
    # the pixel's own colour is reproduced by the weighted centres within a few ab units
    decoded = (weights[..., None] * centres[index] * 110).sum(dim=1).permute(0, 3, 1, 2)
    assert float((decoded - ab * 110).abs().max()) < 4.0


def test_rebalancing_favours_rare_colours_and_weighs_one_pixel_one_on_average():
    prior = torch.tensor([0.7, 0.2, 0.1, 0.0])
    weights = rebalancing_weights(prior)
    assert weights[0] < weights[1] < weights[2] < weights[3]
    assert torch.isclose((prior * weights).sum(), torch.tensor(1.0))
    centres = colour_bin_centres() / 110
    gray = torch.zeros(1, 2, 4, 4)
    assert bin_prior(gray, centres).argmax() == nearest_bins(gray, centres)[0, 0, 0]


def test_the_loss_is_lowest_for_logits_that_point_at_the_true_colour():
    centres = colour_bin_centres() / 110
    target = torch.zeros(1, 2, 4, 4)
    target[:, 0] = 0.4  # a = 44: a red
    index = int(nearest_bins(target, centres)[0, 0, 0])
    right, wrong = torch.zeros(1, len(centres), 4, 4), torch.zeros(1, len(centres), 4, 4)
    right[:, index] = 8.0
    wrong[:, int(nearest_bins(-target, centres)[0, 0, 0])] = 8.0
    uniform = torch.zeros(1, len(centres), 4, 4)
    losses = [float(colour_bins_loss(logits, target, centres)) for logits in (right, uniform, wrong)]
    assert losses[0] < losses[1] < losses[2]
    # the target at twice the logits' resolution is pooled to theirs
    assert float(colour_bins_loss(right, target.repeat_interleave(2, -1).repeat_interleave(2, -2), centres)) == pytest.approx(losses[0])


def test_bins_generator_outputs_ab_of_any_size_and_folds_exactly():
    torch.manual_seed(0)
    config = ModelConfig(colour_head="bins", base_channels=4, depth=3, noise_channels=2, noise_maps=False)
    generator = build_generator(config).eval()
    x = torch.rand(2, 1, 32, 40) * 2 - 1
    ab, logits = generator(x, with_logits=True)
    assert ab.shape == (2, 2, 32, 40) and logits.shape == (2, 377, 16, 20)
    with torch.no_grad():
        assert torch.allclose(ab, generator(x)) and float(ab.abs().max()) <= 1.0
    assert generator(torch.rand(1, 1, 7, 9)).shape == (1, 2, 7, 9)
    with pytest.raises(ValueError, match="multiples of 8"):
        generator(torch.rand(1, 1, 7, 9), with_logits=True)
    assert torch.allclose(fastpath.fold_batchnorm(generator)(x), ab, atol=1e-5)
    # a lower temperature moves the decoded colour towards the most likely bin: more chroma
    mean_chroma = []
    for temperature in (1.0, 0.38, 0.1):
        variant = build_generator(dataclasses.replace(config, colour_temperature=temperature)).eval()
        variant.load_state_dict(generator.state_dict())
        with torch.no_grad():
            variant.head.classify.weight.mul_(50)
            mean_chroma.append(float(torch.linalg.vector_norm(variant(x), dim=1).mean()))
    assert mean_chroma[0] < mean_chroma[1] < mean_chroma[2], mean_chroma


@pytest.mark.parametrize(
    "settings, message",
    [({"colour_head": "bins", "generator": "resnet18-unet"}, "unet, resunet and encdec"),
     ({"colour_head": "classes"}, "Unknown colour_head"),
     ({"colour_temperature": 0.0}, "colour_temperature")],
)
def test_bad_head_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**settings)


def test_a_bins_run_starts_from_a_regression_body_trains_and_colorizes(folders, tmp_path):
    source = tmp_path / "regression"
    assert main(_args(folders, source, "--max-steps", "2")) == 0
    out = tmp_path / "bins"
    trainer = Trainer(parse_args(_args(folders, out, "--init-from", str(source), "--colour-head", "bins")))
    saved = load_file(str(source / "model.safetensors"))
    started = trainer.generator.state_dict()
    body = [name for name in saved if not name.startswith("head.")]
    assert body and all(torch.equal(started[name], saved[name]) for name in body)
    assert "head.classify.weight" in started and trainer.bin_weights is not None
    assert torch.equal(started["head.rebalancing_log_weights"], trainer.bin_weights.log())

    args = _args(folders, out, "--init-from", str(source), "--colour-head", "bins", "--noise-channels", "2",
                 "--no-noise-maps", "--lambda-diversity", "10", "--diversity-every", "2", "--max-steps", "3")
    # init_from needs the same architecture apart from the head: noise settings must match the source
    assert main(args) == 2
    assert main(_args(folders, out, "--init-from", str(source), "--colour-head", "bins", "--max-steps", "3")) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    assert float(rows[-1]["colour_ce"]) > 0 and float(rows[-1]["l1"]) > 0
    assert json.loads((out / "config.json").read_text())["model"]["colour_head"] == "bins"
    # the rebalancing the head was trained with is saved with it, for decoding's prior correction
    assert torch.equal(load_file(str(out / "model.safetensors"))["head.rebalancing_log_weights"], trainer.bin_weights.log())
    colorizer = Colorizer.from_pretrained(out)
    photo = Image.fromarray(data.chelsea()).convert("L").resize((75, 50))
    output = colorizer.colorize(photo)
    assert output.size == (75, 50) and output.mode == "RGB"
    # the photo's own lightness is kept: the output's gray version is the input within rounding
    assert np.abs(np.asarray(output.convert("L"), dtype=int) - np.asarray(photo, dtype=int)).mean() < 3


def test_a_bins_run_with_the_diversity_term_resumes_exactly(folders, tmp_path):
    options = ["--colour-head", "bins", "--noise-channels", "2", "--no-noise-maps", "--lambda-diversity", "10",
               "--batch-size", "1", "--seed", "4", "--ema-decay", "0.9"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(_args(folders, whole, *options)) == 0
    assert main(_args(folders, split, *options, "--max-steps", "5")) == 0
    # a state saved before the head kept its rebalancing weights resumes with the ones the run computes
    state = torch.load(split / "training_state.pt", weights_only=True)
    for key in ("generator", "ema"):
        del state[key]["head.rebalancing_log_weights"]
    torch.save(state, split / "training_state.pt")
    assert main(["--out", str(split), "--resume"]) == 0
    a = torch.load(whole / "training_state.pt", weights_only=True)
    b = torch.load(split / "training_state.pt", weights_only=True)
    for key in ("generator", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_draws_of_a_bins_model_differ_where_it_is_torn_and_agree_where_it_is_sure():
    generator = build_generator(ModelConfig(colour_head="bins", base_channels=4, depth=3)).eval()
    assert generator.has_injected_noise  # the head samples its own distribution, even without z
    head = generator.head
    logits = torch.full((1, len(head.centres), 16, 16), -20.0)
    red, blue = int(nearest_bins(torch.tensor([0.5, 0.2]).view(1, 2, 1, 1), head.centres)[0, 0, 0]), \
        int(nearest_bins(torch.tensor([0.1, -0.5]).view(1, 2, 1, 1), head.centres)[0, 0, 0])
    logits[:, red, :, :8] = 10.0  # left half: surely red
    logits[:, red, :, 8:] = 0.0  # right half: red or blue, equally likely
    logits[:, blue, :, 8:] = 0.0
    from colorize.models import NoiseDraw

    draws = torch.stack([head.decode(logits, NoiseDraw(torch.Generator().manual_seed(seed))) for seed in range(8)])
    left, right = draws[..., :, 2:6], draws[..., :, 18:30]
    assert float(left.std(dim=0).max()) < 1e-3
    assert float(right.std(dim=0).mean()) > 0.1  # whole regions flip between red and blue
    assert torch.equal(draws[0], head.decode(logits, NoiseDraw(torch.Generator().manual_seed(0))))
    # without a draw: the annealed mean, between the two colours on the torn side
    plain = head.decode(logits)
    assert float(plain[0, 0, 0, 24]) < float(draws[..., 0, 0, 24].max())


def test_prior_correction_divides_the_training_tilt_out_again():
    head = build_generator(ModelConfig(colour_head="bins", base_channels=4, depth=3)).eval().head
    assert not head.knows_rebalancing
    torch.manual_seed(0)
    untilted = torch.randn(1, len(head.centres), 4, 4) * 3
    log_weights = torch.randn(len(head.centres))
    head.rebalancing_log_weights.copy_(log_weights)
    assert head.knows_rebalancing
    tilted = untilted + log_weights[None, :, None, None]  # what rebalanced training teaches the head to predict
    as_trained = head.decode(tilted)
    head.prior_correction = 1.0
    assert torch.allclose(head.decode(tilted), _decoded_plain(head, untilted), atol=1e-6)
    head.prior_correction = 0.5
    halfway = head.decode(tilted)
    assert not torch.allclose(halfway, as_trained, atol=1e-3) and not torch.allclose(halfway, _decoded_plain(head, untilted), atol=1e-3)
    # weights saved without the buffer load, and keep the ones the head has
    state = {k: v for k, v in head.state_dict().items() if k != "rebalancing_log_weights"}
    head.load_state_dict(state)
    assert torch.equal(head.rebalancing_log_weights, log_weights)


def _decoded_plain(head, logits):
    correction, head.prior_correction = head.prior_correction, 0.0
    try:
        return head.decode(logits)
    finally:
        head.prior_correction = correction
