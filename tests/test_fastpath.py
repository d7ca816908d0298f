"""colorize.fastpath: CPU feature detection, the path choice, and the batch-norm-folded fast path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from colorize import Colorizer, fastpath
from colorize.models import GENERATOR_NAMES, ModelConfig, SizeAgnosticGenerator, build_generator, init_weights

TINY = ModelConfig(base_channels=4, depth=4, max_channels=16)
RENDER = 64


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a busy machine
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# /proc/cpuinfo
# --------------------------------------------------------------------------------------------

# Two cores of one socket, each with an SMT sibling (4 logical CPUs), AVX-512 with BF16 and AMX.
SAPPHIRE_RAPIDS = "\n\n".join(
    f"""processor\t: {cpu}
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
siblings\t: 4
core id\t: {cpu // 2}
cpu cores\t: 2
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"""
    for cpu in range(4)
) + "\n"

# This project's development machine: two cores, AVX2, no AVX-512.
EPYC_AVX2 = "\n\n".join(
    f"""processor\t: {cpu}
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
physical id\t: 0
core id\t: {cpu}
cpu cores\t: 2
flags\t\t: fpu sse sse2 avx f16c fma avx2 bmi2"""
    for cpu in range(2)
) + "\n"

# aarch64 kernels call the flags "Features" and give no core ids.
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16

processor\t: 1
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16
"""


def test_parse_cpuinfo_with_avx512_bf16_and_smt():
    info = fastpath.parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert info.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert (info.logical_cores, info.physical_cores) == (4, 2)
    assert info.has("avx512f") and info.has("avx512_bf16") and info.has("amx_bf16")
    assert info.native_bf16
    assert info.summary()["flags"]["amx_bf16"] is True


def test_parse_cpuinfo_avx2_only_has_no_native_bf16():
    info = fastpath.parse_cpuinfo(EPYC_AVX2)
    assert (info.model, info.logical_cores, info.physical_cores) == ("AMD EPYC", 2, 2)
    assert info.has("avx2") and info.has("fma")
    assert not info.has("avx512f") and not info.native_bf16
    assert info.summary()["flags"] == {
        "avx2": True, "fma": True, "avx512f": False, "avx512_vnni": False,
        "avx512_bf16": False, "amx_tile": False, "amx_bf16": False,
    }


def test_parse_cpuinfo_arm_and_empty_text_fall_back():
    arm = fastpath.parse_cpuinfo(ARM)
    assert (arm.logical_cores, arm.physical_cores) == (2, 2)  # no core ids: one core per processor
    assert arm.has("asimd") and not arm.native_bf16  # ARM's bf16 is not the x86 feature we use
    empty = fastpath.parse_cpuinfo("")
    assert empty.logical_cores == 1 and empty.physical_cores == 1 and not empty.flags and empty.model


def test_cpu_info_without_proc_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.setattr(fastpath, "CPUINFO_PATH", tmp_path / "no-such-file")
    fastpath.cpu_info.cache_clear()
    try:
        info = fastpath.cpu_info()
        assert info.logical_cores >= 1 and not info.native_bf16 and not info.flags
    finally:
        fastpath.cpu_info.cache_clear()


def test_recommended_threads_is_physical_cores_within_the_affinity_mask(monkeypatch):
    smt = fastpath.parse_cpuinfo(SAPPHIRE_RAPIDS)
    monkeypatch.setattr(fastpath, "available_cpus", lambda: 4)
    assert fastpath.recommended_threads(smt) == 2  # SMT siblings are not extra cores
    monkeypatch.setattr(fastpath, "available_cpus", lambda: 1)  # e.g. taskset -c 0
    assert fastpath.recommended_threads(smt) == 1


def test_path_choice_and_fallbacks(caplog, monkeypatch):
    avx2 = fastpath.parse_cpuinfo(EPYC_AVX2)
    amx = fastpath.parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert fastpath.choose_path("auto", "cpu", avx2) == "folded"
    # AVX-512: ONNX Runtime (fp32-exact, measured faster there); bf16 changes outputs: only on request
    assert fastpath.choose_path("auto", "cpu", amx) == "onnx"
    assert fastpath.choose_path("auto", "cuda", amx) == "folded"
    assert fastpath.choose_path("onnx", "cpu", avx2) == "onnx"  # the test extra installs onnxruntime
    assert fastpath.choose_path("onnx", "cuda", avx2) == "folded"
    assert fastpath.choose_path("fp32", "cpu", amx) == "eager"
    assert fastpath.choose_path("folded", "cpu", amx) == "folded"
    with caplog.at_level(logging.INFO, logger="colorize.fastpath"):
        assert fastpath.choose_path("bf16", "cpu", avx2) == "bf16"
    assert "no native bf16" in caplog.text
    with pytest.raises(ValueError, match="precision"):
        fastpath.choose_path("int8", "cpu", avx2)
    with pytest.raises(ValueError, match="precision"):
        Colorizer.untrained(model_config=TINY, precision="int8")
    monkeypatch.setattr(fastpath, "onnx_runtime_available", lambda: False)
    assert fastpath.choose_path("auto", "cpu", amx) == "folded"


# --------------------------------------------------------------------------------------------
# Batch-norm folding
# --------------------------------------------------------------------------------------------


def _with_running_statistics(config: ModelConfig, seed: int = 0, std: float = 0.1) -> SizeAgnosticGenerator:
    """A generator whose batch norms hold non-trivial running statistics and affine parameters,
    as after training, and whose outputs are tens of Lab units (not saturated at +-110)."""
    torch.manual_seed(seed)
    generator = build_generator(config)
    init_weights(generator, std=std)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.normal_(1.0, 0.3)
                module.bias.normal_(0.0, 0.3)
    generator.train()
    with torch.no_grad():
        for _ in range(3):
            generator(torch.randn(4, 1, 48, 48) * 0.8)
    return generator.eval()


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_folding_matches_the_eager_generator(name):
    config = ModelConfig(generator=name, base_channels=8, depth=4, max_channels=32)
    # ResNet-18's 20 layers saturate tanh at std 0.1: its outputs would all be +-110
    generator = _with_running_statistics(config, std=0.05 if name == "resnet18-unet" else 0.1)
    before = {key: value.clone() for key, value in generator.state_dict().items()}
    folded = fastpath.fold_batchnorm(generator)
    x = torch.rand(2, 1, 37, 53) * 2 - 1  # odd size: padding and cropping are the generator's
    with torch.inference_mode():
        eager, fast = generator(x), folded(x)
    assert fast.shape == eager.shape == (2, 2, 37, 53)
    assert float(eager.abs().mean()) * 110.0 > 1.5  # a real signal, not all zeros
    assert float((fast - eager).abs().max()) * 110.0 < 1e-3  # Lab units: fp32 rounding only
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in folded.modules())
    for key, value in generator.state_dict().items():  # the source is untouched
        assert torch.equal(value, before[key])


def test_instance_norm_is_left_alone():
    generator = _with_running_statistics(ModelConfig(base_channels=8, depth=4, max_channels=32, norm="instance"))
    folded = fastpath.fold_batchnorm(generator)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.inference_mode():
        assert float((folded(x) - generator(x)).abs().max()) * 110.0 < 1e-3
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in folded.modules()) == sum(
        isinstance(m, torch.nn.InstanceNorm2d) for m in generator.modules()
    )


class _Untraceable(SizeAgnosticGenerator):
    """Data-dependent control flow: torch.fx cannot trace it."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def predict(self, lightness: torch.Tensor) -> torch.Tensor:
        if lightness.mean() > 10:
            return lightness.repeat(1, 2, 1, 1)
        return torch.tanh(self.conv(lightness))


def test_untraceable_or_foreign_generators_fall_back_to_eager(caplog):
    with caplog.at_level(logging.WARNING, logger="colorize.fastpath"):
        assert fastpath.prepare_generator(_Untraceable(), "folded") is None
    assert "eager" in caplog.text
    assert fastpath.prepare_generator(torch.nn.Conv2d(1, 2, 3), "folded") is None
    assert fastpath.prepare_generator(build_generator(TINY), "eager") is None

    colorizer = Colorizer(_Untraceable(), {"format_version": 1}, name="odd")  # precision="auto"
    output = colorizer.colorize(Image.new("L", (40, 30), 100), render_size=32)
    assert output.size == (40, 30)


# --------------------------------------------------------------------------------------------
# The fast path inside Colorizer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator() -> SizeAgnosticGenerator:
    return _with_running_statistics(TINY, seed=1, std=0.2)  # strong colours: gamut handling is exercised


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((150, 100))


def _colorizer(generator, precision: str) -> Colorizer:
    return Colorizer(generator, {"format_version": 1, "model": TINY.to_dict()}, name="tiny", precision=precision)


def test_auto_is_the_default_and_matches_fp32(generator, photo):
    fast, exact = _colorizer(generator, "auto"), _colorizer(generator, "fp32")
    assert Colorizer.untrained(model_config=TINY).precision == "auto"
    expected = fastpath.OnnxGenerator if fastpath.choose_path("auto") == "onnx" else fastpath.FoldedGenerator
    assert type(fast._fast) is expected and exact._fast is None
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    assert float((fast.predict_ab(x) - exact.predict_ab(x)).abs().max()) * 110.0 < 1e-3
    a = np.asarray(fast.colorize(photo, render_size=RENDER)).astype(int)
    b = np.asarray(exact.colorize(photo, render_size=RENDER)).astype(int)
    assert np.abs(a - b).max() <= 1  # 8-bit rounding of a 1e-5 difference, at most


def test_onnx_path_serves_every_shape_and_batch_and_falls_back_to_torch(generator, photo, monkeypatch, caplog):
    fast, exact = _colorizer(generator, "onnx"), _colorizer(generator, "fp32")
    assert isinstance(fast._fast, fastpath.OnnxGenerator)
    export = fastpath.OnnxGenerator._build_session
    exports = []
    monkeypatch.setattr(fastpath.OnnxGenerator, "_build_session", lambda self, example: exports.append(1) or export(self, example))
    for shape in ((1, 1, 32, 32), (3, 1, 64, 160), (1, 1, 17, 5), (1, 1, 37, 53)):
        x = torch.rand(*shape) * 2 - 1  # odd sides: the level-by-level padding is exported as a function of the shape
        assert float((fast.predict_ab(x) - exact.predict_ab(x)).abs().max()) * 110.0 < 1e-3
    assert len(exports) == 1 and fast._fast._session is not None and not fast._fast._failed
    monkeypatch.undo()

    broken = _colorizer(generator, "onnx")
    monkeypatch.setattr(fastpath.OnnxGenerator, "_build_session", lambda self, example: 1 / 0)
    with caplog.at_level(logging.WARNING, logger="colorize.fastpath"):
        a = np.asarray(broken.colorize(photo, render_size=RENDER)).astype(int)
    assert "using the folded torch model" in caplog.text and broken._fast._failed
    assert np.abs(a - np.asarray(exact.colorize(photo, render_size=RENDER)).astype(int)).max() <= 1

    monkeypatch.setattr(fastpath, "onnx_runtime_available", lambda: False)
    assert isinstance(_colorizer(generator, "onnx")._fast, fastpath.FoldedGenerator)


def test_seeds_still_sample_dropout_on_the_eager_model(generator, photo):
    fast, exact = _colorizer(generator, "auto"), _colorizer(generator, "fp32")
    one = np.asarray(fast.colorize(photo, render_size=RENDER, seed=3))
    assert np.array_equal(one, np.asarray(exact.colorize(photo, render_size=RENDER, seed=3)))  # same eager model
    other = np.asarray(fast.colorize(photo, render_size=RENDER, seed=4))
    assert np.abs(one.astype(int) - other).mean() > 0.5  # the noise is really sampled
    plain = np.asarray(fast.colorize(photo, render_size=RENDER))
    assert np.abs(one.astype(int) - plain).mean() > 0.5


@pytest.mark.skipif(
    not fastpath.cpu_info().native_bf16,
    reason="this CPU has no avx512_bf16/amx_bf16: bf16 would be emulated (slow) and is not offered here",
)
def test_bf16_on_a_cpu_with_native_bf16_stays_within_its_bound(generator, photo):
    fast, exact = _colorizer(generator, "bf16"), _colorizer(generator, "fp32")
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    error = (fast.predict_ab(x) - exact.predict_ab(x)).abs() * 110.0
    assert float(error.max()) < fastpath.BF16_MAX_AB_ERROR_LAB
    a = np.asarray(fast.colorize(photo, render_size=RENDER)).astype(int)
    b = np.asarray(exact.colorize(photo, render_size=RENDER)).astype(int)
    assert np.abs(a - b).mean() < 3.0


def test_a_bins_head_runs_on_the_onnx_path_without_a_channel_softmax(photo):
    """The annealed mean is exported as exp, one 1x1 convolution and a division: ONNX Runtime runs a
    softmax (or a sum) over the 377 bin channels several times slower than the rest of the head."""
    import onnx

    config = ModelConfig(base_channels=4, depth=4, max_channels=16, colour_head="bins")
    torch.manual_seed(0)
    generator = build_generator(config)
    init_weights(generator, std=0.2)
    generator.eval()
    fast, exact = (
        Colorizer(generator, {"format_version": 1, "model": config.to_dict()}, name="bins", precision=precision)
        for precision in ("onnx", "fp32")
    )
    x = torch.rand(2, 1, 48, 80) * 2 - 1
    assert float((fast.predict_ab(x) - exact.predict_ab(x)).abs().max()) * 110.0 < 1e-3
    assert fast._fast._session is not None and not fast._fast._failed
    operators = {node.op_type for node in onnx.load_from_string(fast._fast.exported(x)).graph.node}
    assert "Exp" in operators and not {"Softmax", "ReduceSum"} & operators
    a = np.asarray(fast.colorize(photo, render_size=RENDER)).astype(int)
    assert np.abs(a - np.asarray(exact.colorize(photo, render_size=RENDER)).astype(int)).max() <= 1
