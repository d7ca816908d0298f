"""Copy a model folder with its noise-injection weights drawn afresh (everything else unchanged).

    python scripts/reset_noise_injection.py runs/v4-stage1 runs/v4-stage1-fresh-noise [--no-noise-maps]

Used between the shipped v4 model's first and second training stages (its model card says
why): stage 1 had rewarded per-pixel diversity, and the network had learned to meet it with a
fixed texture of stripes driven by the injected noise; a first stage 2 with per-pixel noise maps
met the reward with blotches at the maps' resolution, so the second one drops the maps
(`--no-noise-maps`: z alone). The deterministic pass (zero noise) does not use these weights, so
it is unchanged; the next stage starts from small noise again.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from colorize.checkpoint import load_model, save_model
from colorize.models import ModelConfig, build_generator


def main(source: str, destination: str, *, noise_maps: bool | None = None, seed: int = 0) -> None:
    trained, config = load_model(source)
    model_config = ModelConfig.from_dict(config["model"])
    if not model_config.noise_channels:
        raise SystemExit(f"{source} has no injected noise to reset.")
    if noise_maps is not None:
        model_config = dataclasses.replace(model_config, noise_maps=noise_maps)
    torch.manual_seed(seed)
    generator = build_generator(model_config)
    kept = {name: value for name, value in trained.state_dict().items() if not name.startswith("noise.")}
    missing, unexpected = generator.load_state_dict(kept, strict=False)
    assert not unexpected and all(name.startswith("noise.") for name in missing), (missing, unexpected)
    metadata = {k: v for k, v in config.items() if k not in ("format_version", "model")}
    metadata["noise_injection_reset"] = {"from": source, "seed": seed, "noise_maps": model_config.noise_maps}
    save_model(destination, generator.eval(), model_config, metadata=metadata)
    print(f"{destination}: noise injections drawn afresh (per-pixel maps {'on' if model_config.noise_maps else 'off'})")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    if len(arguments) != 2 or set(flags) - {"--no-noise-maps"}:
        raise SystemExit("usage: python scripts/reset_noise_injection.py SOURCE_MODEL DESTINATION [--no-noise-maps]")
    main(arguments[0], arguments[1], noise_maps=False if flags else None)
