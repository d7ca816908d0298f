"""The fast inference path: what this CPU can do, how many threads to use, and a prepared copy
of a generator for deterministic (`seed=None`) calls.

What `python -m colorize.bench --compare-paths` measured on the CPUs we have (see
results/bench.md) decides what `Colorizer(precision="auto")` does:

- "onnx" (CPU, needs `pip install onnx onnxruntime`, the `fast` extra): the folded model below
  exported once to ONNX (dynamic batch/height/width, on the first call, ~0.5 s; the app does it
  in the background at start) and run by ONNX Runtime; same function up to float32 rounding.
  The default on CPUs with AVX-512 where it is installed: on the 2-core AVX-512 machine of
  results/bench.md it runs the network at the app's render shape (128x160) in about half the
  time of "folded" (7-8 vs 14 ms). Not on AVX2 CPUs: on the one we measured before, the network
  alone was within noise of "folded" (71 vs 76 ms at 256x352) and end to end slower (124 vs 110
  ms at 1024x768).
- "folded" (the default elsewhere, any device; `precision="folded"` asks for it): a copy of the generator with every batch
  norm folded into the convolution before it (eval statistics are constants, so conv -> BN is
  one affine conv), dropout left out (it is off without a seed) and the weights in
  channels_last. It computes the same function as the eager model up to float32 rounding (max
  |ab| error about 1e-5 Lab units), so it needs no tolerance beyond fp32's.
- "eager": the generator as it is; always used with a `seed`, because the noise z of pix2pix
  *is* dropout, and whenever `precision="fp32"` is asked for (the reference).
- "bf16": eager under autocast. Worth it only where the CPU has native bf16 arithmetic
  (avx512_bf16 or amx_bf16 in /proc/cpuinfo); elsewhere oneDNN emulates it and it is several
  times slower than fp32. Outputs move by up to a few Lab units, so it is never chosen
  automatically: ask for it with `precision="bf16"`.

Measured and rejected (numbers in results/bench.md; the network at 256x352 on 2 AVX2 cores,
CPU ms per call: eager 99 contiguous / 94 channels_last, folded 86, TorchScript 96, compile 84,
bf16 emulated 4183): TorchScript trace + freeze + optimize_for_inference (slower than the folded
eager model, a second to prepare); torch.compile (40 s to compile on two cores and 30 s again for
every new render shape, for ~2%; with inductor's `freezing=True` it crashed on the second shape);
bf16 without native support (40x slower); the contiguous layout (no faster than channels_last,
up to 10% slower in other runs).
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import io
import logging
import os
import platform
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import fx, nn

from .models import SizeAgnosticGenerator

logger = logging.getLogger(__name__)

CPUINFO_PATH = Path("/proc/cpuinfo")
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
PATHS = ("onnx", "folded", "eager", "bf16")
# bf16 keeps 8 bits of mantissa: on a small model with saturated outputs we measured a largest
# |ab| difference of 4.2 Lab units against fp32 (mean 0.4); the tests allow this much:
BF16_MAX_AB_ERROR_LAB = 8.0


# --------------------------------------------------------------------------------------------
# What the CPU can do
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as /proc/cpuinfo describes it (model name, feature flags, cores)."""

    model: str
    flags: frozenset[str] = field(default_factory=frozenset, repr=False)
    logical_cores: int = 1
    physical_cores: int = 1

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def native_bf16(self) -> bool:
        """True where bf16 matrix arithmetic runs in hardware (AVX512-BF16 or AMX-BF16)."""
        return self.has("avx512_bf16") or self.has("amx_bf16")

    def summary(self) -> dict:
        return {
            "model": self.model,
            "logical_cores": self.logical_cores,
            "physical_cores": self.physical_cores,
            "flags": {flag: self.has(flag) for flag in FLAGS_OF_INTEREST},
            "native_bf16": self.native_bf16,
        }


def parse_cpuinfo(text: str) -> CpuInfo:
    """Read the text of /proc/cpuinfo (x86 or ARM layout); missing fields fall back gently."""
    processors = [block for block in re.split(r"\n\s*\n", text) if block.strip()]
    model = ""
    flags: set[str] = set()
    cores: set[tuple[str, str]] = set()
    logical = 0
    for block in processors:
        fields_ = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields_[key.strip().lower()] = value.strip()
        if "processor" not in fields_:
            continue
        logical += 1
        model = model or fields_.get("model name") or fields_.get("hardware") or fields_.get("cpu model", "")
        flags.update((fields_.get("flags") or fields_.get("features") or "").split())
        if "core id" in fields_:
            cores.add((fields_.get("physical id", "0"), fields_["core id"]))
    logical = max(1, logical)
    physical = len(cores) if cores else logical
    return CpuInfo(model=model or platform.processor() or "unknown", flags=frozenset(flags), logical_cores=logical, physical_cores=physical)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (cached). Off Linux: the model from `platform`, no flags."""
    try:
        return parse_cpuinfo(CPUINFO_PATH.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        count = os.cpu_count() or 1
        return CpuInfo(model=platform.processor() or "unknown", logical_cores=count, physical_cores=count)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.cache
def thread_pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """A pool of `workers` threads kept for the process, for work that releases the GIL
    (the compiled compose kernel, zlib): made once per size, idle threads cost nothing."""
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="colorize")


def recommended_threads(info: CpuInfo | None = None) -> int:
    """One intra-op thread per physical core we may use: SMT siblings only contend for the FMA units."""
    info = info or cpu_info()
    return max(1, min(info.physical_cores, available_cpus()))


def use_recommended_threads() -> int:
    """Set torch's intra-op threads to `recommended_threads()` (not `os.cpu_count()`: a container or
    `taskset` may allow fewer CPUs than the machine has); returns the number."""
    threads = recommended_threads()
    torch.set_num_threads(threads)
    return threads


@functools.cache
def onnx_runtime_available() -> bool:
    """Whether the ONNX path can run here: onnxruntime to run it, onnx for torch's exporter."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:  # ImportError, or a broken binary wheel
        return False
    return True


def choose_path(precision: str, device: torch.device | str = "cpu", info: CpuInfo | None = None) -> str:
    """The network path for a `precision` ("auto", "fp32", "onnx" or "bf16") on `device` (see module docstring).

    "auto" is "onnx" on a CPU with AVX-512 where ONNX Runtime is installed (the `fast` extra),
    "folded" elsewhere: both are fp32-exact; ONNX Runtime ran the network at the app's render
    shape in half the time on AVX-512 (results/bench.md) and was slower end to end on an AVX2
    CPU we measured before.
    """
    if precision == "fp32":
        return "eager"
    if precision == "folded":
        return "folded"
    if precision == "bf16":
        device = torch.device(device)
        if device.type == "cpu" and not (info or cpu_info()).native_bf16:
            logger.info("This CPU has no native bf16 (avx512_bf16/amx_bf16): bf16 autocast will be emulated and slow.")
        return "bf16"
    if precision == "auto":
        on_avx512_cpu = torch.device(device).type == "cpu" and (info or cpu_info()).has("avx512f")
        return "onnx" if on_avx512_cpu and onnx_runtime_available() else "folded"
    if precision == "onnx":
        if torch.device(device).type != "cpu" or not onnx_runtime_available():
            logger.warning("ONNX Runtime needs a CPU device and `pip install onnx onnxruntime`; using the folded torch model.")
            return "folded"
        return "onnx"
    raise ValueError(f"Unknown precision '{precision}'; choose auto, fp32, folded, onnx or bf16.")


# --------------------------------------------------------------------------------------------
# Batch norm folding
# --------------------------------------------------------------------------------------------


class _Predict(nn.Module):
    """`generator.predict` as a module's forward, so torch.fx can trace it (no padding logic)."""

    def __init__(self, generator: SizeAgnosticGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.generator.predict(lightness)


class FoldedGenerator(SizeAgnosticGenerator):
    """A traced, batch-norm-folded body with the same padding and cropping as its source generator
    (a body traced from a generator that pads level by level carries that padding itself)."""

    def __init__(self, body: nn.Module, size_multiple: int, *, pads_per_level: bool = False, hint_channels: int = 0) -> None:
        super().__init__()
        self.body = body
        self.size_multiple = size_multiple
        self.pads_per_level = pads_per_level
        self.hint_channels = hint_channels

    def predict(self, lightness: torch.Tensor) -> torch.Tensor:
        # the deterministic pass only: a sample of the noise runs the eager generator
        return self.body(lightness)


def _foldable(norm: nn.Module) -> bool:
    return (
        isinstance(norm, nn.BatchNorm2d)
        and norm.running_mean is not None
        and norm.running_var is not None
    )


@torch.no_grad()
def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, norm: nn.BatchNorm2d) -> None:
    """conv <- norm(conv(.)) with the norm's running statistics (eval mode)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps) if norm.affine else torch.rsqrt(norm.running_var + norm.eps)
    shift = (norm.bias if norm.affine else torch.zeros_like(scale)) - norm.running_mean * scale
    if isinstance(conv, nn.ConvTranspose2d):
        conv.weight.mul_(scale.view(1, -1, 1, 1))  # weight: (in, out, kh, kw)
    else:
        conv.weight.mul_(scale.view(-1, 1, 1, 1))  # weight: (out, in, kh, kw)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)


def fold_batchnorm(generator: SizeAgnosticGenerator) -> FoldedGenerator:
    """A copy of `generator` for deterministic inference: batch norms folded, dropout dropped.

    Works on any generator of `colorize.models` (it traces `predict` with torch.fx and folds
    every BatchNorm2d whose only input is a Conv2d or ConvTranspose2d used once). Instance
    norm and unmatched batch norms stay as they are. The source generator is not touched.
    """
    source = copy.deepcopy(generator).eval()
    graph_module = fx.symbolic_trace(_Predict(source))
    modules = dict(graph_module.named_modules())
    calls: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module":
            continue
        module = modules[node.target]
        if isinstance(module, nn.Dropout) or (isinstance(module, nn.Identity) and len(node.args) == 1):
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
            continue
        if not _foldable(module) or len(node.args) != 1:
            continue
        producer = node.args[0]
        if not (isinstance(producer, fx.Node) and producer.op == "call_module"):
            continue
        conv = modules[producer.target]
        if (
            not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
            or conv.groups != 1
            or len(producer.users) != 1
            or calls[producer.target] != 1
            or calls[node.target] != 1
        ):
            continue
        _fold(conv, module)
        node.replace_all_uses_with(producer)
        graph_module.graph.erase_node(node)
        folded += 1
    graph_module.graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    graph_module.requires_grad_(False)
    logger.debug("Folded %d batch norms into their convolutions.", folded)
    return FoldedGenerator(
        graph_module, generator.size_multiple, pads_per_level=generator.pads_per_level, hint_channels=generator.hint_channels
    ).eval()


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------


class OnnxGenerator(SizeAgnosticGenerator):
    """The folded body exported to ONNX and run by ONNX Runtime on the CPU (float32).

    One export with dynamic batch, height and width serves every render shape (the level-by-level
    padding is traced as a function of the shape: `models.pad_to_even`); it happens on the first
    call (about half a second for the shipped model), so loading a model stays quick. If export
    or the session fails, the folded torch body answers instead, with a warning.
    """

    def __init__(self, folded: FoldedGenerator, *, threads: int | None = None) -> None:
        super().__init__()
        self.folded = folded
        self.size_multiple = folded.size_multiple
        self.pads_per_level = folded.pads_per_level
        self.hint_channels = folded.hint_channels
        self.threads = threads
        self._session = None
        self._failed = False
        self._lock = threading.Lock()

    def exported(self, example: torch.Tensor) -> bytes:
        """The folded body as an ONNX model (dynamic batch, height and width), traced on `example`."""
        buffer = io.BytesIO()
        axes = {0: "batch", 2: "height", 3: "width"}
        with warnings.catch_warnings():  # the TorchScript-based exporter announces its deprecation
            warnings.simplefilter("ignore")
            torch.onnx.export(
                self.folded.body, (example,), buffer, input_names=["lightness"], output_names=["ab"],
                dynamic_axes={"lightness": axes, "ab": axes}, opset_version=17, dynamo=False,
            )
        return buffer.getvalue()

    def _build_session(self, example: torch.Tensor):
        import onnxruntime

        model = self.exported(example)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        # spinning ORT threads would compete with torch's for the cores in the steps around the network
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def predict(self, lightness: torch.Tensor) -> torch.Tensor:
        if lightness.device.type != "cpu" or lightness.dtype != torch.float32 or self._failed:
            return self.folded.predict(lightness)
        if self._session is None:
            with self._lock:
                if self._session is None and not self._failed:
                    try:
                        self._session = self._build_session(lightness.contiguous())
                    except Exception as error:  # exporter and runtime raise many types
                        logger.warning("ONNX Runtime path unavailable (%s); using the folded torch model.", error)
                        self._failed = True
            if self._failed:
                return self.folded.predict(lightness)
        (ab,) = self._session.run(None, {"lightness": lightness.detach().contiguous().numpy()})
        return torch.from_numpy(ab)


def prepare_generator(
    generator: nn.Module,
    path: str,
    *,
    memory_format: torch.memory_format = torch.channels_last,
) -> nn.Module | None:
    """The module to call for `seed=None` on `path`, or None for "use the generator itself".

    A generator that cannot be traced falls back to the eager one with a warning, never an error.
    """
    if path not in ("folded", "onnx"):
        return None
    if not isinstance(generator, SizeAgnosticGenerator):
        logger.warning("%s is not a colorize generator; using it as it is.", type(generator).__name__)
        return None
    try:
        prepared = fold_batchnorm(generator)
    except Exception as error:  # fx raises many types for untraceable code
        logger.warning("Could not prepare the fast path (%s); using the eager generator.", error)
        return None
    parameter = next(generator.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    prepared = prepared.to(device, memory_format=memory_format)
    if path == "onnx" and device.type == "cpu":
        return OnnxGenerator(prepared)
    return prepared
