"""The main job: train both networks, evaluate them, visualize them and write the report.

    python -m topdown.pipeline                           # procedural flowers, short schedule
    python -m topdown.pipeline --data.dataset flower_photos   # or flowers102; --data.root says where
    python -m topdown.pipeline --config configs/pipeline.yaml --epochs 2

Every stage records itself in ``<out>/pipeline.json`` (written atomically) when it finishes; running the
same command again skips finished stages, and an interrupted training stage resumes from its
``last.ckpt``. The per-stage commands (``train.py``, ``evaluate.py``, ``evaluate.py visualize``) stay usable
on their own: the pipeline calls exactly them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

import torch
from rich.console import Console

from . import env  # noqa: F401
from .accuracy_control import epoch_val_acc, nearest_epoch, nearest_on_validation
from .checkpoint import load_model, load_run, read_checkpoint, rebuild_data
from .cli import train_main
from .clock import training_clock
from .data.subsets import CachedSplit
from .errors import ConfigError, run_command
from .findings.__main__ import FindingsConfig, find_checkpoints
from .generator import train_generator
from .generator.train import GeneratorConfig
from .metrics import clean_metrics
from .options import DataChoice, JobDataset, load_section, parse_options
from .report import build_report
from .report.summary import summary_table
from .robustness.adopt import adopt_results
from .robustness.cli import evaluate as evaluate_checkpoints
from .robustness.config import SuiteConfig
from .run_state import RunState
from .snapshots import kept_epochs, snapshot_name
from .stages import StageBar
from .vis.cli import visualize_checkpoints
from .vis.config import VisConfig

STAGES = ("train", "generator", "evaluate", "visualize", "findings", "report")
#: What runs unless ``stages`` says otherwise: every stage but the optional ``generator``.
DEFAULT_STAGES = ("train", "evaluate", "visualize", "findings", "report")
#: The name in results.json of a control model trained from ``configs/<stem>.yaml``.
CONTROL_NAMES = {"baseline_blur": "blur_control"}
ROOT = Path(__file__).resolve().parents[1]
console = Console(stderr=True)


@dataclass
class DatasetRecipe:
    """What a run on one dataset evaluates and renders, typed and checked before any work starts.

    Args:
        eval: the robustness suite: the path of its YAML file (``configs/eval/*.yaml``; relative to the config
            that names it) or its settings inline.
        vis: the visualizations: a ``configs/vis/*.yaml`` path or settings inline (``{steps: 64, methods:
            [classes]}``; unset ones keep the visualizer's defaults).
        estimates: the seconds each stage (``train``, per model; ``evaluate``, ``visualize``, ``findings``,
            ``report``) took on a reference machine, for the stage bar's time left (scaled by how fast the
            stages that ran went; without them it shows the time elapsed only).
    """

    eval: SuiteConfig = field(default_factory=SuiteConfig)
    vis: VisConfig = field(default_factory=VisConfig)
    estimates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Built from a path or a plain mapping (a hand-written config, the experiment's runs) rather than parsed:
        # type the sections.
        if not isinstance(self.eval, SuiteConfig):
            self.eval = load_section(SuiteConfig, self.eval)
        if not isinstance(self.vis, VisConfig):
            self.vis = load_section(VisConfig, self.vis)


@dataclass
class PipelineConfig:
    """What the pipeline runs.

    Args:
        out: output folder (checkpoints, evaluation, visualizations, report).
        data: ``dataset`` (``synthetic``, ``flower_photos`` or ``flowers102``: adds ``configs/data/<dataset>.yaml``,
            the data and its recipe) and ``root`` (where the real images are), as ``--data.dataset`` and
            ``--data.root`` (:class:`~topdown.options.DataChoice`).
        models: training configs, baseline first (it is the reference for relative figures).
        epochs: training epochs (``None``: the configs' own).
        seed: training seed (``seed_everything``).
        train_configs: more training config files for every model, read after the model's and the dataset's
            (``configs/trainval.yaml``: train on the validation images too).
        per_dataset: each dataset's suite, visualizations and stage estimates (:class:`DatasetRecipe`); the run
            uses its ``dataset``'s entry.
        findings_images: test images the ``findings`` stage compares every model on (``python -m
            topdown.findings``: cue reliance, localization, band reliance, gradient and render spectra,
            dissection, CKA, with paired tests).
        findings_ig_steps: the findings' integrated-gradients steps (most of the stage's time).
        generator: how the optional ``generator`` stage trains the learned prior of the baseline and the
            top-down net (``python -m topdown.generator``); the visualize stage then renders through them
            (``dgn_am``, ``ppgn``, ``priors``).
        stages: which stages to run, in order (``generator`` is optional: add it after ``train``).
        redo: finished stages to run again, with every later one (e.g. ``[visualize]`` after a change to the
            visualizations: it reruns them and rebuilds the report). ``evaluate`` reuses each saved part of
            the suite whose settings are unchanged. ``train`` cannot be redone in place: delete
            ``<out>/train/<model>`` to retrain a model.
        controls: training configs of control models, trained with the same recipe and evaluated with the same
            suite beside the two (``configs/baseline_blur.yaml``: the blur control), and visualized with the same
            recipe and seeds.
        accuracy_control: keep every epoch of the baseline (``configs/keep_epochs.yaml``) and evaluate, as
            ``accuracy_control``, its epoch whose validation accuracy is nearest the top-down net's final one
            (test accuracy where the nets were trained on the validation images).
        adopt_eval: a published suite result (a ``results.json``, e.g. ``docs/runs/<dataset>/seed<k>/eval``'s)
            that the evaluate stage adopts instead of running the suite, where every model scores the clean test
            split exactly as it records (:mod:`topdown.robustness.adopt`): retrained nets whose measured
            checkpoints are gone. Where one differs, it says which and the suite runs.
    """

    out: str = "outputs/synthetic"
    data: DataChoice = field(default_factory=DataChoice)
    models: list[str] = field(default_factory=lambda: ["configs/baseline.yaml", "configs/topdown.yaml"])
    epochs: int | None = None
    seed: int = 0
    train_configs: list[str] = field(default_factory=list)
    per_dataset: dict[str, DatasetRecipe] = field(default_factory=dict)
    findings_images: int = 128
    findings_ig_steps: int = 16
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    redo: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    accuracy_control: bool = False
    adopt_eval: str | None = None

    def __post_init__(self) -> None:
        # Built from a plain mapping (a stored or hand-written config) rather than parsed: type the sections.
        if isinstance(self.generator, dict):
            self.generator = GeneratorConfig(**self.generator)
        if isinstance(self.data, dict):
            self.data = DataChoice(**self.data)
        self.per_dataset = {
            name: entry if isinstance(entry, DatasetRecipe) else load_section(DatasetRecipe, entry)
            for name, entry in self.per_dataset.items()
        }

    def recipe(self) -> DatasetRecipe:
        """This dataset's entry of ``per_dataset``; a one-line error where there is none."""
        if self.data.dataset not in self.per_dataset:
            raise ConfigError(
                f"per_dataset: no entry for dataset {self.data.dataset!r} (its eval and vis); "
                f"the config has {sorted(self.per_dataset)}"
            )
        return self.per_dataset[self.data.dataset]

    def validate(self) -> DatasetRecipe:
        """Check everything the run will need before any of it starts; returns this dataset's recipe."""
        check_stages(self.stages)
        check_redo(self.redo)
        if self.data.dataset not in get_args(JobDataset):
            raise ConfigError(
                f"data.dataset: unknown dataset {self.data.dataset!r}; choose one of {', '.join(get_args(JobDataset))}"
            )
        if self.adopt_eval is not None and not Path(self.adopt_eval).is_file():
            raise ConfigError(f"adopt_eval: no such results file {self.adopt_eval!r}")
        for key in ("models", "controls", "train_configs"):
            for path in getattr(self, key):
                if not Path(_resolve(path)).is_file():
                    raise ConfigError(f"{key}: no such config file {path!r}")
        recipe = self.recipe()
        recipe.eval.validate()
        recipe.vis.validate()
        return recipe


def check_redo(redo: list[str]) -> None:
    """Raise a one-line ``ConfigError`` for a stage that cannot be redone in place."""
    check_stages(redo, "redo")
    if "train" in redo:
        raise ConfigError("redo: train cannot be redone in place; delete <out>/train/<model> to retrain a model")


def check_stages(stages: list[str], key: str = "stages") -> None:
    """Raise a one-line ``ConfigError`` naming ``key`` and any stage that is not one of :data:`STAGES`."""
    if bad := [s for s in stages if s not in STAGES]:
        raise ConfigError(f"{key}: unknown stage(s) {bad}; choose from {list(STAGES)}")


def _has_spectra(path: Path, names: list[str]) -> bool:
    """Whether the run's vis.json holds the ``spectra`` renders of every one of ``names``."""
    try:
        models = json.loads(path.read_text())["models"]
    except (OSError, ValueError, KeyError):
        return False
    return all("spectra" in models.get(n, {}).get("methods", {}) for n in names)


def _resolve(path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() or p.exists() else ROOT / p)


def _checkpoint_val_acc(path: Path) -> float | None:
    """The validation accuracy a checkpoint's ``val/acc`` checkpoint callback last saw, if it recorded one."""
    for key, state in (read_checkpoint(path).get("callbacks") or {}).items():
        if "'val/acc'" in key and state.get("current_score") is not None:
            return float(state["current_score"])
    return None


class Pipeline:
    """Runs the stages of one run in order, each once: ``state`` (:class:`~topdown.run_state.RunState`) remembers
    what finished, :mod:`topdown.accuracy_control` chooses the accuracy control, the stages' own commands do the
    work."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.recipe = cfg.validate()  # every setting checked before any work
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.state = RunState(self.out, asdict(cfg), STAGES)
        self.bar = StageBar(self.units(), self.recipe.estimates, console)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def done(self, key: str) -> bool:
        return self.state.done(key)

    def _finish(self, key: str, started: float, **info: Any) -> None:
        self.state.finish(key, started, **info)
        self.bar.finish(key, time.time() - started)

    def units(self) -> list[str]:
        """The job's units of work, in order: ``train/<model>`` for each model, then the other stages."""
        units: list[str] = []
        for stage in self.cfg.stages:
            units += [f"train/{n}" for n in self.arch_names()] if stage == "train" else [stage]
        return units

    def _begin(self, key: str, label: str) -> None:
        self.bar.show(key, label)

    def _skip(self, key: str, label: str) -> None:
        self.bar.skip(key)
        self.bar.show(key, label)

    def arch_names(self) -> list[str]:
        """Every trained model's folder name: the two models', then the controls'."""
        return [Path(m).stem for m in self.training_configs()]

    def training_configs(self) -> list[str]:
        return [*self.cfg.models, *self.cfg.controls]

    def eval_models(self) -> tuple[list[Path], list[str]]:
        """The checkpoints the suite evaluates and their names in results.json: ``baseline``, ``topdown``, then
        ``blur_control`` (``baseline_blur``) or the control's own name, then ``accuracy_control``."""
        stems = self.arch_names()
        names = [CONTROL_NAMES.get(s, s) for s in stems]
        names[: len(self.cfg.models)] = ["baseline", "topdown"][: len(self.cfg.models)]
        ckpts = [self.checkpoint(s) for s in stems]
        if self.cfg.accuracy_control:
            ckpts.append(Path(self.accuracy_control()["checkpoint"]))
            names.append("accuracy_control")
        return ckpts, names

    def accuracy_control(self) -> dict[str, Any]:
        """The baseline's epoch whose validation accuracy is nearest the top-down net's final one (the later
        epoch on a tie), recorded in pipeline.json. Where the nets were trained on the validation images too
        (Flowers102's ``trainval``), their validation accuracy is a training accuracy: the epoch is chosen on the
        test split's top-1 instead (:meth:`_accuracy_control_on_test`)."""
        if "accuracy_control" in self.state:
            return self.state["accuracy_control"]
        base, td = self.arch_names()[:2]
        if self._trained_on_validation(base):
            return self._accuracy_control_on_test(base, td)
        target = epoch_val_acc(self.out / "train" / td)
        curve = epoch_val_acc(self.out / "train" / base)
        if not target or not curve:
            raise ConfigError(f"{self.out}/train: no validation accuracy logged to choose the accuracy control from")
        epoch, goal = nearest_on_validation(target, curve)
        path = self._epoch_checkpoint(base, epoch)
        if not path.is_file():
            raise ConfigError(
                f"{path}: the baseline's epoch {epoch} was not kept; train it with configs/keep_epochs.yaml "
                "(accuracy_control: true does so for new runs)"
            )
        self.state["accuracy_control"] = {
            "checkpoint": str(path),
            "epoch": epoch,
            "chosen_on": "val",
            "val_acc": curve[epoch],
            "target_val_acc": goal,
            "baseline_final_val_acc": curve[max(curve)],
        }
        return self.state["accuracy_control"]

    def _trained_on_validation(self, name: str) -> bool:
        return bool(load_model(self.checkpoint(name)).data.get("trainval"))

    def _epochs_dir(self, name: str) -> Path:
        return self.out / "train" / name / "checkpoints" / "epochs"

    def _epoch_checkpoint(self, name: str, epoch: int) -> Path:
        return self._epochs_dir(name) / snapshot_name(epoch)

    def _accuracy_control_on_test(self, base: str, td: str) -> dict[str, Any]:
        """The baseline's kept epoch whose test top-1 is nearest the top-down net's (``nearest_epoch``: about a
        third of the epochs measured). The test images are decoded once; each measured top-1 is kept in
        pipeline.json as it comes, so an interrupted choice resumes."""
        kept = kept_epochs(self._epochs_dir(base))
        if not kept:
            raise ConfigError(
                f"{self._epochs_dir(base)}: no epochs kept to choose the accuracy control from; "
                "train the baseline with configs/keep_epochs.yaml (accuracy_control: true does so for new runs)"
            )
        measured: dict[str, float] = self.state.setdefault("accuracy_control_test_top1", {})
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        data: list[Any] = []

        def top1(path: Path, key: str | None = None) -> float:
            """``path``'s test top-1, kept under ``key`` (default: the file's stem, ``epochNNN``)."""
            key = key or path.stem
            if key not in measured:
                model = load_model(path)
                if not data:
                    dm = rebuild_data(model.data, self.cfg.data.root)
                    data[:] = [CachedSplit(dm.subset("test")), dm.classes]
                measured[key] = clean_metrics(model.net.to(device), data[0], data[1], 256, device)["top1"]
                self.state.save()
                self.bar.console.print(f"accuracy control: {key} test top-1 {measured[key]:.4f}")
            return measured[key]

        goal = top1(self.checkpoint(td), td)
        epoch = nearest_epoch(kept, goal, lambda e: top1(self._epoch_checkpoint(base, e)))
        path = self._epoch_checkpoint(base, epoch)
        self.state["accuracy_control"] = {
            "checkpoint": str(path),
            "epoch": epoch,
            "chosen_on": "test",
            "why": "the nets were trained on the validation images (trainval)",
            "test_top1": top1(path),
            "target_test_top1": goal,
        }
        return self.state["accuracy_control"]

    def checkpoint(self, name: str) -> Path:
        return self.out / "train" / name / "checkpoints" / "last.ckpt"

    # -- stages ----------------------------------------------------------------------------------------
    def train(self) -> None:
        for config, name in zip(self.training_configs(), self.arch_names()):
            key = f"train/{name}"
            if self.done(key):
                self._skip(key, f"train {name}: done ({self.checkpoint(name)})")
                continue
            root = self.out / "train" / name
            data_config = _resolve(f"configs/data/{self.cfg.data.dataset}.yaml")
            args = ["fit", "--config", _resolve(config), "--config", data_config]
            if self.cfg.accuracy_control and name == self.arch_names()[0]:
                args += ["--config", _resolve("configs/keep_epochs.yaml")]
            for extra in self.cfg.train_configs:
                args += ["--config", _resolve(extra)]
            if self.cfg.data.root:
                args += ["--data.root", self.cfg.data.root]
            if self.cfg.epochs is not None:
                args += ["--trainer.max_epochs", str(self.cfg.epochs)]
            args += [
                "--seed_everything",
                str(self.cfg.seed),
                "--trainer.default_root_dir",
                str(root),
            ]
            resume = self.checkpoint(name).exists()
            if resume:
                args += ["--ckpt_path", "last"]
            self._begin(key, f"train {name}{' (resuming from last.ckpt)' if resume else ''}")
            started = time.time()
            trainer = train_main(args).trainer
            val_acc = trainer.callback_metrics.get("val/acc")  # none for a finished run found again
            # The run's own clock: every epoch it trained, across resumes and whichever command ran them.
            clock = training_clock(self.checkpoint(name)) or {}
            if clock and clock["epochs"] < trainer.current_epoch:
                clock["seconds"] = None  # resumed from a checkpoint saved without a clock: its time is partial
            self._finish(
                key,
                started,
                checkpoint=str(self.checkpoint(name)),
                epochs=trainer.current_epoch,
                val_acc=float(val_acc) if val_acc is not None else _checkpoint_val_acc(self.checkpoint(name)),
                train_seconds=clock.get("seconds"),
                train_images_per_s=clock.get("images_per_s"),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),  # the same recipe trains bitwise alike on it
            )

    def _stage(self, key: str, label: str, result: Path, work: Callable[[], Any]) -> None:
        """Run a stage's ``work`` once: skipped where done, else run and recorded in pipeline.json."""
        if self.done(key):
            self._skip(key, f"{key}: done ({result})")
            return
        self._begin(key, label)
        started = time.time()
        work()
        self._finish(key, started, results=str(result))

    def generator_files(self) -> dict[str, Path]:
        """``{model: generator file}`` for the baseline and the top-down net."""
        return {name: self.out / "generator" / f"{name}.pt" for name in ["baseline", "topdown"][: len(self.cfg.models)]}

    def generator(self) -> None:
        if self.done("generator"):
            self._skip("generator", f"generator: done ({self.out / 'generator'})")
            return
        self._begin("generator", "generator (the learned prior of each net)")
        started = time.time()
        stems = self.arch_names()[: len(self.cfg.models)]
        for (name, path), stem in zip(self.generator_files().items(), stems):
            loaded = load_run([self.checkpoint(stem)], [name], self.cfg.data.root)
            train = loaded.data_module.subset("train")
            count = len(train) if self.cfg.generator.images is None else min(self.cfg.generator.images, len(train))
            images = torch.stack([train[k][0] for k in range(count)])
            lm = loaded.models[name]
            train_generator(lm.net, images, path, self.cfg.generator, str(lm.path), loaded.data_description)
        self._finish("generator", started, results=str(self.out / "generator"))

    def evaluate(self) -> None:
        def work() -> None:
            ckpts, names = self.eval_models()
            if (published := self.cfg.adopt_eval) is not None:
                found = adopt_results(published, [str(c) for c in ckpts], names, self.out / "eval", self.cfg.data.root)
                if not found:
                    console.print(
                        f"evaluate: every model scores as {published} records; its results adopted", soft_wrap=True
                    )
                    return
                console.print(
                    f"evaluate: not the nets {published} measured ({'; '.join(found)}): the suite runs", soft_wrap=True
                )
            evaluate_checkpoints(
                [str(c) for c in ckpts], names, self.recipe.eval, self.out / "eval", self.cfg.data.root
            )

        self._stage("evaluate", "evaluate", self.out / "eval" / "results.json", work)

    def visualize(self) -> None:
        def work() -> None:
            ckpts, names = self.eval_models()  # the controls too, with the same recipe and seeds
            cfg = self.recipe.vis
            if self.done("generator"):  # render through each net's learned prior too
                gens = {name: str(path) for name, path in self.generator_files().items() if path.is_file()}
                cfg = replace(cfg, generators=gens)
            visualize_checkpoints([str(c) for c in ckpts], names, cfg, str(self.out / "vis"), self.cfg.data.root)

        self._stage("visualize", "visualize", self.out / "vis" / "vis.json", work)

    def findings(self) -> None:
        def work() -> None:
            ckpts, names = self.eval_models()  # the controls too: each finding is stated against each of them
            cfg = FindingsConfig(images=self.cfg.findings_images, ig_steps=self.cfg.findings_ig_steps, table=False)
            if _has_spectra(self.out / "vis" / "vis.json", names):
                cfg.vis = str(self.out / "vis" / "vis.json")  # the class renders' spectra, compared too
            find_checkpoints([str(c) for c in ckpts], names, cfg, self.out / "findings", self.cfg.data.root)

        self._stage("findings", "findings", self.out / "findings" / "findings.json", work)

    def report(self) -> Path:
        self._begin("report", "report")
        started = time.time()
        path = build_report(self.out)
        self._finish("report", started, path=str(path))
        return path

    def run(self) -> Path | None:
        self.out.mkdir(parents=True, exist_ok=True)
        if cleared := self.state.forget(self.cfg.redo):
            console.print(f"redo: {', '.join(cleared)} will run again")
        self.state.save()
        report = None
        for stage in self.cfg.stages:
            result = getattr(self, stage)()
            if stage == "report":
                report = result
        self.bar.show(None, "finished")
        if report is not None:
            if (table := summary_table(self.out)) is not None:
                console.print(table)
            console.print(f"report: {report.resolve()}", soft_wrap=True)  # a path to copy: never wrapped
            print(report.resolve())
        return report


def parse_pipeline(argv: list[str]) -> PipelineConfig:
    """The pipeline's config from ``argv`` (a config file and options), typed; a bad option or section is a
    one-line :class:`ConfigError`."""
    cfg = parse_options(PipelineConfig, argv, __doc__, __name__)
    if cfg.out == PipelineConfig.out and cfg.data.dataset != "synthetic":
        cfg.out = f"outputs/{cfg.data.dataset}"
    return cfg


def run_pipeline(argv: list[str]) -> Path | None:
    """Parse ``argv`` and run the pipeline it configures."""
    return Pipeline(parse_pipeline(argv)).run()


def main(args: list[str] | None = None) -> Path | None:
    return run_command(run_pipeline, args)


if __name__ == "__main__":
    # The importable module's main, so that its config classes belong to `topdown.pipeline` and their typed
    # fields resolve under any runner (`python -m cProfile -m ...` keeps its own `__main__` module).
    from topdown.pipeline import main as _main

    _main()
