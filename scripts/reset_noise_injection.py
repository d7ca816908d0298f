"""Copy a model folder with its noise-injection weights drawn afresh (everything else unchanged).

    python scripts/reset_noise_injection.py runs/v4-stage1 runs/v4-stage1-fresh-noise

Used once, between the shipped v4 model's first and second training stages (its model card
says why): stage 1 had rewarded per-pixel diversity, and the network had learned to meet it with
a fixed texture of stripes driven by the injected noise. The deterministic pass (zero noise)
does not use these weights, so it is unchanged; the next stage starts from small noise again.
"""

from __future__ import annotations

import sys

import torch

from colorize.checkpoint import load_model, save_model
from colorize.models import ModelConfig, NoiseInjection


def main(source: str, destination: str, seed: int = 0) -> None:
    generator, config = load_model(source)
    fresh = 0
    torch.manual_seed(seed)
    for module in generator.modules():
        if isinstance(module, NoiseInjection):
            fresh += 1
            module.reset_parameters()
    if not fresh:
        raise SystemExit(f"{source} has no injected noise to reset.")
    metadata = {k: v for k, v in config.items() if k not in ("format_version", "model")}
    metadata["noise_injection_reset"] = {"from": source, "seed": seed, "modules": fresh}
    save_model(destination, generator, ModelConfig.from_dict(config["model"]), metadata=metadata)
    print(f"{destination}: {fresh} noise injections drawn afresh")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python scripts/reset_noise_injection.py SOURCE_MODEL DESTINATION")
    main(sys.argv[1], sys.argv[2])
