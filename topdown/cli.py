"""Command-line entry points (``train.py`` and ``evaluate.py`` call these)."""

from __future__ import annotations

import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar  # noqa: E402
from pytorch_lightning.cli import LightningCLI  # noqa: E402
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger  # noqa: E402

from . import env  # noqa: F401  (sets environment before third-party imports)
from .data.datamodule import FlowerData  # noqa: E402
from .data.sources import ImageLoadError  # noqa: E402
from .lit import ImageClassifier, NonFiniteLossError  # noqa: E402

#: Errors a user can act on: printed as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (NonFiniteLossError, ImageLoadError, FileNotFoundError, ValueError)


class TopDownCLI(LightningCLI):
    """LightningCLI with topdown's defaults: checkpoints and logs under ``trainer.default_root_dir``
    (by default ``runs/<dataset>/<topdown|baseline>``).

    Checkpoints go to ``<default_root_dir>/checkpoints`` (best by ``val/acc`` and ``last.ckpt``), so
    ``--ckpt_path last`` finds them; CSV and TensorBoard logs to ``<default_root_dir>/logs``.
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        root = config.get("default_root_dir") or default_run_dir(self.model, self.datamodule)
        config["default_root_dir"] = root
        if config.get("logger") in (None, True):
            config["logger"] = [CSVLogger(root, name="logs"), TensorBoardLogger(root, name="logs")]
        for cb in list(callbacks) + list(config.get("callbacks") or []):
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = os.path.realpath(os.path.join(root, "checkpoints"))
        return super()._instantiate_trainer(config, callbacks)


def default_run_dir(model: Any, data: Any) -> str:
    """``runs/<dataset>/<topdown|baseline>`` unless ``trainer.default_root_dir`` says otherwise."""
    from .models import is_topdown

    arch = "topdown" if is_topdown(getattr(model, "net", None)) else "baseline"
    return os.path.join("runs", getattr(data, "dataset", "data"), arch)


def trainer_defaults() -> dict[str, Any]:
    return {
        "callbacks": [
            ModelCheckpoint(monitor="val/acc", mode="max", save_last=True, filename="best-{epoch:03d}",
                            auto_insert_metric_name=False),
            LearningRateMonitor(logging_interval="epoch"),
            RichProgressBar(leave=True),
        ],
        "use_distributed_sampler": False,  # FlowerData shards and seeds its own sampler
    }


def train_main(args: list[str] | None = None) -> Any:
    """``python train.py fit|validate|test --config configs/topdown.yaml``."""
    try:
        return TopDownCLI(
            ImageClassifier,
            FlowerData,
            trainer_defaults=trainer_defaults(),
            save_config_kwargs={"overwrite": True},
            args=args,
            auto_configure_optimizers=False,
        )
    except USER_ERRORS as err:
        if os.environ.get("TOPDOWN_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
