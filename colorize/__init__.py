"""Conditional-GAN image colorization: L channel in, a/b channels out."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Colorizer", "Hint", "load_model", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import colorize.color` does not pay for building the inference stack.
    if name == "Colorizer":
        from .infer import Colorizer

        return Colorizer
    if name == "Hint":
        from .hints import Hint

        return Hint
    if name == "load_model":
        from .checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'colorize' has no attribute {name!r}")
