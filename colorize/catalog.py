"""Which colorizers there are to choose from: the shipped model, and checkpoint folders in a models folder.

`shipped_or_untrained` is the one place that decides what runs when no trained model is
installed (a fresh checkout before training, a Space without its weights): the untrained
generator stands in, and the reason is handed back so the caller can say so. The app, the
survey's demo study and the benchmark all start from it.

`ModelCatalog` is the app's model menu: the shipped model, loaded at once, and every checkpoint
folder under `models_dir` (found afresh on each call, so folders added later appear), each
loaded on first use and then kept.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from .infer import Colorizer

logger = logging.getLogger(__name__)

SHIPPED = "shipped"


def shipped_or_untrained(path: str | Path | None = None, **options) -> tuple[Colorizer, str | None]:
    """(the shipped model, None), or (the untrained generator, why the model could not be loaded).

    `path`: a checkpoint folder standing in for the shipped model (None: the weights in the
    package). `options` go to `Colorizer.from_pretrained` / `Colorizer.untrained` (device, precision).
    """
    try:
        return Colorizer.from_pretrained(path, **options), None
    except CheckpointError as error:
        logger.warning("No trained model could be loaded (%s); the untrained generator stands in.", error)
        return Colorizer.untrained(**options), str(error)


def checkpoint_folders(models_dir: str | Path) -> list[str]:
    """Names of the sub-folders of `models_dir` that hold a complete checkpoint, sorted."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return [
        child.name
        for child in sorted(folder.iterdir())
        if child.name != SHIPPED and (child / CONFIG_FILE).is_file() and (child / WEIGHTS_FILE).is_file()
    ]


class ModelCatalog:
    """The shipped model (loaded now) and the checkpoint folders of `models_dir` (loaded on first use).

    `untrained` is None, or the reason the shipped model is missing and the untrained generator
    stands in for it. Safe to share between threads.
    """

    def __init__(self, models_dir: str | Path, *, shipped: str | Path | None = None, warm_up: bool = False) -> None:
        """`warm_up`: prepare the shipped model's network path in a background thread (the app)."""
        self.models_dir = Path(models_dir)
        colorizer, self.untrained = shipped_or_untrained(shipped)
        self._loaded: dict[str, Colorizer] = {SHIPPED: colorizer}
        self._lock = threading.Lock()
        if warm_up:
            threading.Thread(target=colorizer.warm_up, name="colorize-warm-up", daemon=True).start()

    def names(self) -> list[str]:
        return [SHIPPED, *checkpoint_folders(self.models_dir)]

    def get(self, name: str | None = None) -> Colorizer:
        """The colorizer called `name` (None or "" = the shipped one); CheckpointError with a sentence if there is none."""
        name = name or SHIPPED
        with self._lock:
            if name not in self._loaded:
                if name not in self.names():  # also refuses "../x": only listed folder names load
                    raise CheckpointError(f"There is no model called '{name}'; pick one from the list.")
                self._loaded[name] = Colorizer.from_pretrained(self.models_dir / name)
            return self._loaded[name]
