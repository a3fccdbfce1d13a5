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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from . import env  # noqa: F401
from .accuracy_control import epoch_val_acc, nearest_epoch, nearest_on_validation
from .errors import ConfigError, run_command
from .generator.train import GeneratorConfig
from .io import atomic_write_json
from .options import DataOptions, parse_command
from .stages import StageBar

STAGES = ("train", "generator", "evaluate", "visualize", "findings", "report")
#: What runs unless ``stages`` says otherwise: every stage but the optional ``generator``.
DEFAULT_STAGES = ("train", "evaluate", "visualize", "findings", "report")
#: The name in results.json of a control model trained from ``configs/<stem>.yaml``.
CONTROL_NAMES = {"baseline_blur": "blur_control"}
ROOT = Path(__file__).resolve().parents[1]
console = Console(stderr=True)


@dataclass
class PipelineConfig:
    """What the pipeline runs.

    Args:
        out: output folder (checkpoints, evaluation, visualizations, report).
        dataset: ``synthetic``, ``flower_photos`` or ``flowers102`` (adds ``configs/data/<dataset>.yaml``: the
            data and its recipe; for the procedural flowers, demo-sized nets on a short schedule).
        data_root: where the real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
        models: training configs, baseline first (it is the reference for relative figures).
        epochs: training epochs (``None``: the configs' own).
        seed: training seed (``seed_everything``).
        train_args: extra ``train.py fit`` arguments for both models.
        eval_config: the evaluation suite (``None``: the dataset's, from ``per_dataset``, else
            ``configs/eval/quick.yaml``).
        eval_args: extra ``evaluate.py`` arguments.
        vis_args: extra ``evaluate.py visualize`` arguments (``None``: the dataset's, from ``per_dataset``, else
            none).
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
        per_dataset: per dataset, ``eval_config`` and ``vis_args`` for where those are ``None``, and
            ``estimates``: the seconds each stage (``train``, per model; ``evaluate``, ``visualize``,
            ``report``) took on a reference machine, for the stage bar's time left (scaled by how fast the
            stages that ran went; without them it shows the time elapsed only).
    """

    out: str = "outputs/synthetic"
    dataset: Literal["synthetic", "flower_photos", "flowers102"] = "synthetic"
    data_root: str | None = None
    models: list[str] = field(default_factory=lambda: ["configs/baseline.yaml", "configs/topdown.yaml"])
    epochs: int | None = None
    seed: int = 0
    train_args: list[str] = field(default_factory=list)
    eval_config: str | None = None
    eval_args: list[str] = field(default_factory=list)
    vis_args: list[str] | None = None
    findings_images: int = 128
    findings_ig_steps: int = 16
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    redo: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    accuracy_control: bool = False
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.generator, GeneratorConfig):  # a parsed namespace or a stored dict
            g = self.generator
            self.generator = GeneratorConfig(**(dict(g) if isinstance(g, dict) else vars(g)))

    def for_dataset(self) -> dict[str, Any]:
        """This dataset's ``per_dataset`` entry, checked: a one-line ``ValueError`` names an unknown key."""
        entry = self.per_dataset.get(self.dataset) or {}
        if bad := sorted(set(entry) - {"eval_config", "vis_args", "estimates"}):
            raise ConfigError(
                f"per_dataset.{self.dataset}: unknown key(s) {bad}; choose from eval_config, vis_args, estimates"
            )
        return entry


def check_redo(redo: list[str]) -> None:
    """Raise a one-line ``ValueError`` for a stage that cannot be redone in place."""
    check_stages(redo, "redo")
    if "train" in redo:
        raise ConfigError("redo: train cannot be redone in place; delete <out>/train/<model> to retrain a model")


def check_stages(stages: list[str], key: str = "stages") -> None:
    """Raise a one-line ``ValueError`` naming ``key`` and any stage that is not one of :data:`STAGES`."""
    if bad := [s for s in stages if s not in STAGES]:
        raise ConfigError(f"{key}: unknown stage(s) {bad}; choose from {list(STAGES)}")


def _has_spectra(path: Path, names: list[str]) -> bool:
    """Whether the run's vis.json holds the ``spectra`` renders of every one of ``names``."""
    try:
        models = json.loads(path.read_text())["models"]
    except (OSError, ValueError, KeyError):
        return False
    return all("spectra" in models.get(n, {}).get("methods", {}) for n in names)


def _ckpt_args(ckpts: Sequence[Path | str]) -> list[str]:
    """``--ckpt PATH`` for each checkpoint, as every stage's command takes them."""
    return [x for path in ckpts for x in ("--ckpt", str(path))]


def _resolve(path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() or p.exists() else ROOT / p)


def _checkpoint_val_acc(path: Path) -> float | None:
    """The validation accuracy a checkpoint's ``val/acc`` checkpoint callback last saw, if it recorded one."""
    from .checkpoint import read_checkpoint

    for key, state in (read_checkpoint(path).get("callbacks") or {}).items():
        if "'val/acc'" in key and state.get("current_score") is not None:
            return float(state["current_score"])
    return None


class Pipeline:
    def __init__(self, cfg: PipelineConfig) -> None:
        check_stages(cfg.stages)
        check_redo(cfg.redo)
        if cfg.dataset not in ("synthetic", "flower_photos", "flowers102"):
            raise ConfigError(
                f"dataset: unknown dataset {cfg.dataset!r}; choose synthetic, flower_photos or flowers102"
            )
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.state_path = self.out / "pipeline.json"
        self.state: dict[str, Any] = self._load_state()
        own = cfg.for_dataset()
        self.eval_config = cfg.eval_config or own.get("eval_config") or "configs/eval/quick.yaml"
        self.vis_args = list(own.get("vis_args") or [] if cfg.vis_args is None else cfg.vis_args)
        self.bar = StageBar(self.units(), own.get("estimates"), console)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        if self.state_path.exists():
            try:
                state = json.loads(self.state_path.read_text())
            except json.JSONDecodeError as err:
                msg = f"{self.state_path}: unreadable pipeline state ({err}); delete it to start over"
                raise ConfigError(msg) from err
            if state.get("config", {}).get("dataset") not in (None, self.cfg.dataset):
                raise ConfigError(
                    f"{self.out} holds a pipeline run on {state['config']['dataset']!r}; "
                    f"use another --out for {self.cfg.dataset!r}"
                )
            return state
        return {"config": asdict(self.cfg), "stages": {}}

    def _save(self) -> None:
        atomic_write_json(self.state_path, self.state)

    def done(self, key: str) -> bool:
        return bool(self.state["stages"].get(key, {}).get("done"))

    def _finish(self, key: str, started: float, **info: Any) -> None:
        self.state["stages"][key] = {"done": True, "seconds": round(time.time() - started, 1), **info}
        self._save()
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
        self._save()
        return self.state["accuracy_control"]

    def _trained_on_validation(self, name: str) -> bool:
        from .checkpoint import load_model

        return bool(load_model(self.checkpoint(name)).data.get("trainval"))

    def _epochs_dir(self, name: str) -> Path:
        return self.out / "train" / name / "checkpoints" / "epochs"

    def _epoch_checkpoint(self, name: str, epoch: int) -> Path:
        from .snapshots import snapshot_name

        return self._epochs_dir(name) / snapshot_name(epoch)

    def _accuracy_control_on_test(self, base: str, td: str) -> dict[str, Any]:
        """The baseline's kept epoch whose test top-1 is nearest the top-down net's (``nearest_epoch``: about a
        third of the epochs measured). The test images are decoded once; each measured top-1 is kept in
        pipeline.json as it comes, so an interrupted choice resumes."""
        import torch

        from .checkpoint import load_model, rebuild_data
        from .data.subsets import CachedSplit
        from .metrics import clean_metrics
        from .snapshots import kept_epochs

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
                    dm = rebuild_data(model.data, self.cfg.data_root)
                    data[:] = [CachedSplit(dm.subset("test")), dm.classes]
                measured[key] = clean_metrics(model.net.to(device), data[0], data[1], 256, device)["top1"]
                self._save()
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
        self._save()
        return self.state["accuracy_control"]

    def checkpoint(self, name: str) -> Path:
        return self.out / "train" / name / "checkpoints" / "last.ckpt"

    # -- stages ----------------------------------------------------------------------------------------
    def train(self) -> None:
        from .cli import train_main
        from .clock import training_clock

        for config, name in zip(self.training_configs(), self.arch_names()):
            key = f"train/{name}"
            if self.done(key):
                self._skip(key, f"train {name}: done ({self.checkpoint(name)})")
                continue
            root = self.out / "train" / name
            args = ["fit", "--config", _resolve(config), "--config", _resolve(f"configs/data/{self.cfg.dataset}.yaml")]
            if self.cfg.accuracy_control and name == self.arch_names()[0]:
                args += ["--config", _resolve("configs/keep_epochs.yaml")]
            if self.cfg.data_root:
                args += ["--data.root", self.cfg.data_root]
            if self.cfg.epochs is not None:
                args += ["--trainer.max_epochs", str(self.cfg.epochs)]
            args += [
                "--seed_everything",
                str(self.cfg.seed),
                "--trainer.default_root_dir",
                str(root),
                *self.cfg.train_args,
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
            )

    def _stage(
        self,
        key: str,
        label: str,
        result: Path,
        command: Callable[[list[str]], Any],
        args: Callable[[], list[str]],
        extra: Sequence[str] = (),
    ) -> None:
        """Run a stage's command once: skipped where done, else ``command(args() + --data.root + extra)`` with the
        stage recorded in pipeline.json (``extra``: the stage's own arguments from the config, given last)."""
        if self.done(key):
            self._skip(key, f"{key}: done ({result})")
            return
        self._begin(key, label)
        started = time.time()
        argv = args()
        if self.cfg.data_root:
            argv += ["--data.root", self.cfg.data_root]
        command(argv + list(extra))
        self._finish(key, started, results=str(result))

    def generator_files(self) -> dict[str, Path]:
        """``{model: generator file}`` for the baseline and the top-down net."""
        return {name: self.out / "generator" / f"{name}.pt" for name in ["baseline", "topdown"][: len(self.cfg.models)]}

    def generator(self) -> None:
        import torch

        from .checkpoint import load_run
        from .generator import train_generator

        if self.done("generator"):
            self._skip("generator", f"generator: done ({self.out / 'generator'})")
            return
        self._begin("generator", "generator (the learned prior of each net)")
        started = time.time()
        stems = self.arch_names()[: len(self.cfg.models)]
        for (name, path), stem in zip(self.generator_files().items(), stems):
            loaded = load_run([self.checkpoint(stem)], [name], self.cfg.data_root)
            train = loaded.data_module.subset("train")
            count = len(train) if self.cfg.generator.images is None else min(self.cfg.generator.images, len(train))
            images = torch.stack([train[k][0] for k in range(count)])
            lm = loaded.models[name]
            train_generator(lm.net, images, path, self.cfg.generator, str(lm.path), loaded.data_description)
        self._finish("generator", started, results=str(self.out / "generator"))

    def evaluate(self) -> None:
        from .robustness.cli import main as evaluate_main

        def args() -> list[str]:
            ckpts, names = self.eval_models()
            out = [
                "--names",
                json.dumps(names),
                "--config",
                _resolve(self.eval_config),
                "--out",
                str(self.out / "eval"),
            ]
            return _ckpt_args(ckpts) + out

        self._stage(
            "evaluate", f"evaluate ({self.eval_config})", self.out / "eval" / "results.json", evaluate_main, args
        )

    def visualize(self) -> None:
        from .vis.cli import main as vis_main

        def args() -> list[str]:
            ckpts, names = self.eval_models()  # the controls too, with the same recipe and seeds
            out = _ckpt_args(ckpts) + ["--names", json.dumps(names), "--out", str(self.out / "vis")]
            if self.done("generator"):  # render through each net's learned prior too
                gens = {name: str(path) for name, path in self.generator_files().items() if path.is_file()}
                out += ["--generators", json.dumps(gens)]
            return out

        self._stage("visualize", "visualize", self.out / "vis" / "vis.json", vis_main, args, self.vis_args)

    def findings(self) -> None:
        from .findings.__main__ import run as findings_run

        def args() -> list[str]:
            ckpts, names = self.eval_models()  # the controls too: each finding is stated against each of them
            out = ["--names", json.dumps(names), "--out", str(self.out / "findings"), "--table", "false"]
            out += ["--images", str(self.cfg.findings_images), "--ig_steps", str(self.cfg.findings_ig_steps)]
            if _has_spectra(self.out / "vis" / "vis.json", names):
                out += ["--vis", str(self.out / "vis" / "vis.json")]  # the class renders' spectra, compared too
            return _ckpt_args(ckpts) + out

        self._stage("findings", "findings", self.out / "findings" / "findings.json", findings_run, args)

    def report(self) -> Path:
        from .report import build_report

        self._begin("report", "report")
        started = time.time()
        path = build_report(self.out)
        self._finish("report", started, path=str(path))
        return path

    def forget(self, stages: list[str]) -> list[str]:
        """Mark ``stages`` and every stage after the earliest of them as not done; returns the keys cleared."""
        if not stages:
            return []
        first = min(STAGES.index(s) for s in stages)
        later = STAGES[first:]
        cleared = [k for k in self.state["stages"] if k.split("/")[0] in later]
        for k in cleared:
            del self.state["stages"][k]
        return cleared

    def run(self) -> Path | None:
        self.out.mkdir(parents=True, exist_ok=True)
        if cleared := self.forget(self.cfg.redo):
            console.print(f"redo: {', '.join(cleared)} will run again")
        self._save()
        report = None
        for stage in self.cfg.stages:
            result = getattr(self, stage)()
            if stage == "report":
                report = result
        self.bar.show(None, "finished")
        if report is not None:
            from .report.summary import summary_table

            if (table := summary_table(self.out)) is not None:
                console.print(table)
            console.print(f"report: {report.resolve()}", soft_wrap=True)  # a path to copy: never wrapped
            print(report.resolve())
        return report


def run_pipeline(argv: list[str]) -> Path | None:
    """Parse ``argv`` and run the pipeline it configures."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(
        prog="python -m topdown.pipeline", description=__doc__.split("\n\n")[0], exit_on_error=False
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a pipeline config (configs/pipeline.yaml)")
    parser.add_class_arguments(PipelineConfig, nested_key=None)
    parser.add_class_arguments(DataOptions, "data")
    ns = parse_command(parser, argv)
    cfg = PipelineConfig(**{k: v for k, v in vars(ns).items() if k in PipelineConfig.__dataclass_fields__})
    cfg.dataset = ns.data.dataset or cfg.dataset
    cfg.data_root = ns.data.root or cfg.data_root
    if cfg.out == PipelineConfig.out and cfg.dataset != "synthetic":
        cfg.out = f"outputs/{cfg.dataset}"
    return Pipeline(cfg).run()


def main(args: list[str] | None = None) -> Path | None:
    return run_command(run_pipeline, args)


if __name__ == "__main__":
    main()
