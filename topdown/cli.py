"""Command-line entry points (``train.py`` and ``evaluate.py`` call these)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from . import env  # noqa: F401  (sets environment before third-party imports)
from .clock import TrainingClock
from .data.datamodule import FlowerData
from .errors import run_command
from .lit import ImageClassifier
from .models import is_topdown
from .robustness.cli import main as robustness_main
from .vis.cli import main as visualize  # heavy: captum and the method catalog


class _NoAdverts(logging.Filter):
    """Drops Lightning's tips that advertise its cloud services (they say nothing about the run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_lightning() -> None:
    """Keep Lightning's own messages about the run, without the advertisements among them, and without two
    warnings a user cannot act on: a deprecation Lightning 2.6 triggers inside torch on every fit, and the
    notice that ``args=`` was given while ``sys.argv`` holds other arguments (the pipeline's)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAdverts) for f in logger.filters):
            logger.addFilter(_NoAdverts())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # The pipeline calls the training CLI with its own arguments while sys.argv holds the pipeline's.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")


quiet_lightning()


class TopDownCLI(LightningCLI):
    """LightningCLI with topdown's defaults: checkpoints and logs under ``trainer.default_root_dir``
    (by default ``runs/<dataset>/<topdown|baseline>``).

    Checkpoints go to ``<default_root_dir>/checkpoints`` (best by ``val/acc`` and ``last.ckpt``), so
    ``--ckpt_path last`` finds them; CSV and TensorBoard logs to ``<default_root_dir>/csv`` and ``/tensorboard``.
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        root = config.get("default_root_dir") or default_run_dir(self.model, self.datamodule)
        config["default_root_dir"] = root
        if config.get("logger") in (None, True):
            config["logger"] = [CSVLogger(root, name="csv"), TensorBoardLogger(root, name="tensorboard")]
        callbacks = list(callbacks) + default_callbacks(
            progress_bar=config.get("enable_progress_bar") is not False,
            checkpoints=not config.get("fast_dev_run"),
        )
        for cb in list(callbacks) + list(config.get("callbacks") or []):
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = os.path.realpath(os.path.join(root, "checkpoints"))
        return super()._instantiate_trainer(config, callbacks)


def default_run_dir(model: Any, data: Any) -> str:
    """``runs/<dataset>/<topdown|baseline>`` unless ``trainer.default_root_dir`` says otherwise."""
    arch = "topdown" if is_topdown(getattr(model, "net", None)) else "baseline"
    return os.path.join("runs", getattr(data, "dataset", "data"), arch)


def default_callbacks(progress_bar: bool = True, checkpoints: bool = True) -> list[Any]:
    """Best (by ``val/acc``) and last checkpoints, the learning rate and each epoch's wall-clock time and
    throughput in the logs (the totals also in the checkpoints: :mod:`topdown.clock`), a rich progress bar.

    ``last.ckpt`` is rewritten after every epoch by a checkpoint of its own: Lightning's ``save_last=True``
    only copies the last *best* checkpoint, so a run whose accuracy stopped rising would leave an older
    epoch there, and ``--ckpt_path last`` would redo finished epochs. ``checkpoints=False`` (a
    ``fast_dev_run``) leaves both out, so a smoke run leaves nothing for a later real run to resume from.
    """
    callbacks: list[Any] = [LearningRateMonitor(logging_interval="epoch"), TrainingClock()]
    if checkpoints:
        best = ModelCheckpoint(
            monitor="val/acc", mode="max", filename="best-{epoch:03d}", auto_insert_metric_name=False
        )
        last = ModelCheckpoint(
            monitor=None,
            save_top_k=1,
            filename=ModelCheckpoint.CHECKPOINT_NAME_LAST,
            enable_version_counter=False,
        )
        callbacks = [best, last, *callbacks]  # in this order: last.ckpt then holds the best one's state
    if progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    return callbacks


#: What every training run shares (trainer, data, optimizer), read before the model file a ``--config`` names.
TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train.yaml"
SUBCOMMANDS = ("fit", "validate", "test", "predict")


def trainer_defaults() -> dict[str, Any]:
    return {"use_distributed_sampler": False}  # FlowerData shards and seeds its own sampler


def train_main(args: list[str] | None = None) -> Any:
    """``python train.py fit|validate|test --config configs/topdown.yaml``."""

    def train(argv: list[str]) -> Any:
        return TopDownCLI(
            ImageClassifier,
            FlowerData,
            trainer_defaults=trainer_defaults(),
            save_config_kwargs={"overwrite": True},
            parser_kwargs={cmd: {"default_config_files": [str(TRAIN_CONFIG)]} for cmd in SUBCOMMANDS},
            args=argv,
            auto_configure_optimizers=False,
        )

    return run_command(train, args)


def evaluate_main(args: list[str] | None = None) -> Any:
    """``evaluate.py [robustness options]`` (the suite) or ``evaluate.py visualize [options]``."""

    def evaluate(argv: list[str]) -> Any:
        if argv and argv[0] == "visualize":
            return visualize(argv[1:])

        return robustness_main(argv)

    return run_command(evaluate, args)
