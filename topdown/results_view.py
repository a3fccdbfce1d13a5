"""Typed, read-only views of the two result documents: ``results.json`` (``robustness/SCHEMA.md``) and
``vis.json`` (``vis/SCHEMA.md``).

Every reader of those documents (results.csv, the printed summary, the plots, the report, the conclusions, the
experiment's page) reads through these classes. A view wraps the document's dict without copying it; the file
on disk stays a plain dict. Fields are only ever added within a schema version, so an older document (from
before AutoAttack, the controls or ``first_broken_by``) simply lacks some: a missing field reads ``None``, a
missing entry of a keyed section (``worst_case("l2")``, ``autoattack(norm, eps)``, ``check(name)``) reads
``None``, and a missing section reads as an empty one.

    res = Results(json.loads(Path("eval/results.json").read_text()))
    base, td = res.pair()
    res.models[td].worst_case("linf").accuracy
    res.models[td].autoattack("linf", 2 / 255)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
V = TypeVar("V", bound="_View")

#: Model keys a results.json may hold beside the baseline and the top-down net, in evaluation order, with their
#: names in words: a baseline whose input first passes the top-down net's low-pass pyramid level (upsampled back),
#: and the baseline's checkpoint from the epoch whose validation accuracy is nearest the top-down net's.
CONTROLS = {"blur_control": "blur control", "accuracy_control": "accuracy control"}


class _Field(Generic[T]):
    """A field of a view, read from the key of the same name (``None`` where the document lacks it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    def __get__(self, view: Any, owner: type | None = None) -> T:
        if view is None:  # on the class: the field itself
            return cast(T, self)
        return dig(view.raw, self.key)


def dig(d: Any, *keys: Any) -> Any:
    """``d[k0][k1]...``, or ``None`` where any step is missing (a key, an index, a ``None`` on the way)."""
    for k in keys:
        if d is None:
            return None
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return None
    return d


class _View:
    """A dict of a document, read by key; ``raw`` is the dict itself (``{}`` where the document has none)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any] | None) -> None:
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}

    def __bool__(self) -> bool:
        """False for an empty (or missing) part of the document, as its dict would be."""
        return bool(self.raw)

    def _at(self, *keys: Any) -> Any:
        return dig(self.raw, *keys)

    def _dict(self, key: str) -> dict[str, Any]:
        d = self.raw.get(key)
        return d if isinstance(d, dict) else {}

    def _view(self, cls: type[V], *keys: Any) -> V | None:
        """The dict at ``keys`` as a view of class ``cls``; ``None`` where it is missing or empty."""
        d = self._at(*keys)
        return cls(d) if isinstance(d, Mapping) and d else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.raw)!r})"


def _entries(d: Any, cls: type) -> dict[str, Any]:
    """The dict entries of ``d`` as views of class ``cls`` (entries that are not dicts left out)."""
    return {k: cls(v) for k, v in (d or {}).items() if isinstance(v, Mapping)} if isinstance(d, Mapping) else {}


# -- results.json ------------------------------------------------------------------------------------------------
class Clean(_View):
    """``models.<name>.clean``: on the whole test split."""

    top1 = _Field[float | None]()
    top5 = _Field[float | None]()
    macro_acc = _Field[float | None]()
    confidence = _Field[float | None]()
    ece = _Field[float | None]()
    nll = _Field[float | None]()
    n = _Field[int | None]()

    def get(self, metric: str) -> float | None:
        """One figure by name (``top1``, ``macro_acc``, ...)."""
        return self._at(metric)

    @property
    def per_class_acc(self) -> dict[str, float]:
        return self._dict("per_class_acc")


class Subset(_View):
    """``models.<name>.subset``: on the attacked images."""

    n = _Field[int | None]()
    indices = _Field[list[int] | None]()
    accuracy = _Field[float | None]()


class Attack(_View):
    """One attack (``models.<name>.attacks.<attack>``, or ``decision``)."""

    name = _Field[str | None]()
    method = _Field[str | None]()
    kind = _Field[str | None]()
    norm = _Field[str | None]()
    n = _Field[int | None]()
    epsilons = _Field[list[float] | None]()
    accuracy = _Field[list[float] | None]()
    #: per image smallest adversarial found (minimal and decision attacks; ``None`` for fixed ones)
    distances = _Field[list[float | None] | None]()
    median_distance = _Field[float | None]()


class WorstCase(_View):
    """``models.<name>.worst_case.<norm>``: per image over every white-box attack of the norm."""

    epsilons = _Field[list[float] | None]()
    accuracy = _Field[list[float] | None]()
    attacks = _Field[list[str] | None]()
    #: [per eps] {attack: images it broke first}; ``None`` in a document from before it was recorded
    first_broken_by = _Field[list[dict[str, int]] | None]()
    first_broken_by_image = _Field[list[list[str | None]] | None]()

    def accuracy_at(self, k: int) -> float | None:
        """The worst-case accuracy at eps index ``k``."""
        return self._at("accuracy", k)

    def robust_at(self, k: int) -> list[bool] | None:
        """Per attacked image, whether it is still correctly classified under every attack at eps index ``k``
        (``None`` in a document from before per-image records)."""
        per_image = self._at("first_broken_by_image", k)
        return None if per_image is None else [a is None for a in per_image]

    def accuracy_at_eps(self, eps: float) -> float | None:
        """The worst-case accuracy at budget ``eps`` (``None`` where the sweep has no such eps)."""
        for e, acc in zip(self.epsilons or [], self.accuracy or []):
            if abs(float(e) - eps) < 1e-9:
                return acc
        return None


class AutoAttackPart(_View):
    """One attack of an AutoAttack run (``autoattack.<budget>.attacks.<attack>``)."""

    n_broken = _Field[int | None]()
    attacked = _Field[list[int] | None]()


class AutoAttack(_View):
    """``models.<name>.autoattack.<norm>:<eps>``: AutoAttack at one budget."""

    norm = _Field[str | None]()
    eps = _Field[float | None]()
    n = _Field[int | None]()
    accuracy_without = _Field[float | None]()
    accuracy_with = _Field[float | None]()
    extra_broken = _Field[int | None]()
    version = _Field[str | None]()

    @property
    def attacks(self) -> dict[str, AutoAttackPart]:
        return _entries(self.raw.get("attacks"), AutoAttackPart)


class Perturbation(_View):
    """``models.<name>.perturbations.<name>``: the reference paper's protocol."""

    levels = _Field[list[float] | None]()
    accuracy_per_level = _Field[list[float] | None]()
    mean_l2_per_level = _Field[list[float] | None]()
    l2_grid = _Field[list[float] | None]()
    accuracy_vs_l2 = _Field[list[float] | None]()
    auc = _Field[float | None]()
    median_min_l2 = _Field[float | None]()


class Scale(_View):
    """``models.<name>.scales.<kind>``: one pyramid level (or image band) perturbed at a time."""

    kind = _Field[str | None]()
    mode = _Field[str | None]()
    levels = _Field[list[float] | None]()
    factors = _Field[list[int] | None]()
    #: ``"sigma"`` (noise) or ``"epsilon"`` (pgd)
    strength = _Field[str | None]()
    #: [level][strength]
    accuracy = _Field[list[list[float]] | None]()
    most_harmful_level = _Field[int | None]()
    most_harmful_factor = _Field[int | None]()

    @property
    def strengths(self) -> list[float] | None:
        """The sigmas (noise) or epsilons (pgd), as ``strength`` names them."""
        return self._at(f"{self.strength}s") if self.strength else None

    @property
    def sigmas(self) -> list[float] | None:
        return self._at("sigmas")

    @property
    def epsilons(self) -> list[float] | None:
        return self._at("epsilons")


class Corruption(_View):
    """``models.<name>.corruptions.per_corruption.<name>``."""

    severities = _Field[list[int] | None]()

    @property
    def accuracy(self) -> list[float] | None:
        """Per severity (``accuracy_per_severity`` in the earliest documents)."""
        return self._at("accuracy") or self._at("accuracy_per_severity")


class Corruptions(_View):
    """``models.<name>.corruptions``: per corruption, and the errors relative to the reference model."""

    mce = _Field[float | None]()
    relative_mce = _Field[float | None]()
    mean_accuracy = _Field[float | None]()

    def get(self, metric: str) -> float | None:
        """One summary figure by name (``mce``, ``relative_mce``, ``mean_accuracy``)."""
        return self._at(metric)

    @property
    def per_corruption(self) -> dict[str, Corruption]:
        return _entries(self.raw.get("per_corruption"), Corruption)

    @property
    def ce(self) -> dict[str, float]:
        return self._dict("ce")


class Check(_View):
    """``models.<name>.sanity.<check>``, or a quality figure of ``vis.json`` (the same fields)."""

    #: ``True``, ``False``, or ``None`` (not run)
    passed = _Field[bool | None]()
    value = _Field[float | None]()
    threshold = _Field[float | list[float] | None]()
    direction = _Field[str | None]()
    detail = _Field[Any]()


class ModelResults(_View):
    """``models.<name>``: one model's results."""

    __slots__ = ("name",)

    def __init__(self, raw: Mapping[str, Any] | None, name: str = "") -> None:
        super().__init__(raw)
        self.name = name

    architecture = _Field[str | None]()

    @property
    def is_topdown(self) -> bool:
        return bool(self._at("is_topdown"))

    @property
    def flagged(self) -> bool:
        """Whether any sanity check failed."""
        return bool(self._at("flagged"))

    @property
    def failed_checks(self) -> list[str]:
        return list(self._at("failed_checks") or [])

    @property
    def arch(self) -> dict[str, Any]:
        """The checkpoint's ``{class_path, init_args}`` (``{}`` where not recorded)."""
        a = self._at("checkpoint", "arch")
        return a if isinstance(a, dict) else {}

    @property
    def epoch(self) -> int | None:
        """The checkpoint's epoch (0-based)."""
        e = self._at("checkpoint", "epoch")
        return e if isinstance(e, int) else None

    @property
    def clean(self) -> Clean:
        return Clean(self.raw.get("clean"))

    @property
    def clean_top1(self) -> float | None:
        return self.clean.top1

    @property
    def subset(self) -> Subset:
        return Subset(self.raw.get("subset"))

    @property
    def attacks(self) -> dict[str, Attack]:
        return _entries(self.raw.get("attacks"), Attack)

    def attack(self, name: str) -> Attack | None:
        return self.attacks.get(name)

    @property
    def decision(self) -> Attack | None:
        return self._view(Attack, "decision")

    @property
    def worst_cases(self) -> dict[str, WorstCase]:
        """``{norm: worst case}`` for every norm recorded."""
        return _entries(self.raw.get("worst_case"), WorstCase)

    def worst_case(self, norm: str) -> WorstCase | None:
        return self._view(WorstCase, "worst_case", norm)

    def worst_accuracy(self, norm: str, k: int) -> float | None:
        """The worst-case accuracy of ``norm`` at eps index ``k``."""
        return self._at("worst_case", norm, "accuracy", k)

    @property
    def autoattacks(self) -> dict[str, AutoAttack]:
        """``{"<norm>:<eps>": AutoAttack}`` (empty before AutoAttack joined the suite)."""
        return _entries(self.raw.get("autoattack"), AutoAttack)

    def autoattack(self, norm: str, eps: float) -> AutoAttack | None:
        """AutoAttack at ``(norm, eps)``, or ``None`` where it did not run there."""
        for s in self.autoattacks.values():
            if s.norm == norm and math.isclose(s.eps if s.eps is not None else -1.0, eps, rel_tol=1e-6):
                return s
        return None

    @property
    def perturbations(self) -> dict[str, Perturbation]:
        return _entries(self.raw.get("perturbations"), Perturbation)

    def perturbation(self, name: str) -> Perturbation | None:
        return self.perturbations.get(name)

    def perturbation_auc(self, name: str) -> float | None:
        return self._at("perturbations", name, "auc")

    @property
    def scales(self) -> dict[str, Scale]:
        """``{kind: Scale}``: ``noise`` and ``pgd`` where run."""
        return _entries(self.raw.get("scales"), Scale)

    def scale(self, kind: str) -> Scale | None:
        return self._view(Scale, "scales", kind)

    @property
    def corruptions(self) -> Corruptions:
        return Corruptions(self.raw.get("corruptions"))

    @property
    def sanity(self) -> dict[str, Check]:
        """``{check: Check}`` in the order the checks ran."""
        return _entries(self.raw.get("sanity"), Check)

    def check(self, name: str) -> Check | None:
        return self.sanity.get(name)


class Results(_View):
    """A whole ``results.json``: the suite's settings, the data, and every model's results."""

    schema_version = _Field[int | None]()
    created = _Field[str | None]()
    #: the model the mCE is relative to (``None`` in the earliest documents)
    reference_model = _Field[str | None]()

    @property
    def models(self) -> dict[str, ModelResults]:
        """``{name: ModelResults}`` in evaluation order."""
        m = self.raw.get("models")
        return {k: ModelResults(v, k) for k, v in m.items()} if isinstance(m, Mapping) else {}

    def model(self, name: str) -> ModelResults | None:
        m = self._at("models", name)
        return ModelResults(m, name) if isinstance(m, Mapping) else None

    def has(self, *names: str) -> bool:
        """Whether every one of ``names`` is a model of this document."""
        models = self.raw.get("models") or {}
        return all(n in models for n in names)

    def pair(self) -> tuple[str, str] | None:
        """``(baseline key, top-down key)``, or ``None`` without one of each (a control is not the baseline)."""
        models = self.models
        base = [k for k, m in models.items() if not m.is_topdown and k not in CONTROLS]
        td = [k for k, m in models.items() if m.is_topdown]
        return (base[0], td[0]) if base and td else None

    def controls(self) -> list[str]:
        """The controls this document holds, in ``CONTROLS`` order."""
        models = self.models
        return [k for k in CONTROLS if k in models and not models[k].is_topdown]

    def epsilons(self, norm: str) -> list[float]:
        """The suite's eps sweep of ``norm`` (``[]`` when it ran no attacks, or none of that norm)."""
        sweep = self._at("suite", "attacks", f"{norm}_epsilons")
        return list(sweep) if isinstance(sweep, list) else []

    @property
    def perturbation_levels(self) -> dict[str, list[float]]:
        """``{perturbation: levels}`` as the suite set them."""
        return self._at("suite", "perturbations", "levels") or {}

    @property
    def autoattack_budgets(self) -> list[tuple[str, float]]:
        """``(norm, eps)`` of every AutoAttack budget the suite set (``[]`` without AutoAttack; a budget lacking
        its norm or eps is left out)."""
        budgets = self._at("suite", "autoattack", "budgets") or []
        return [(b["norm"], float(b["eps"])) for b in budgets if isinstance(b, Mapping) and "norm" in b and "eps" in b]

    @property
    def subset_size(self) -> int | None:
        """How many test images the attacks ran on."""
        return self._at("data", "subset_size")

    @property
    def sanity_tolerance(self) -> float | None:
        return self._at("suite", "sanity", "tolerance")

    @property
    def data_description(self) -> dict[str, Any]:
        """The checkpoints' ``FlowerData.describe()`` (``{}`` where not recorded)."""
        return self._at("data", "description") or {}

    @property
    def classes(self) -> list[str]:
        return list(self.data_description.get("classes", []))


def as_results(doc: Results | Mapping[str, Any]) -> Results:
    """``doc`` as a :class:`Results` (a results.json dict is wrapped, a view passes through)."""
    return doc if isinstance(doc, Results) else Results(doc)


# -- vis.json ---------------------------------------------------------------------------------------------------
class VisMethod(_View):
    """``models.<model>.methods.<method>``: one method's result."""

    description = _Field[str | None]()
    layer = _Field[str | None]()
    seconds = _Field[float | None]()

    @property
    def images(self) -> list[str]:
        """Paths relative to the vis folder."""
        return list(self._at("images") or [])

    @property
    def quality(self) -> dict[str, Check]:
        """``{figure: Check}``: the method's quality figures."""
        return _entries(self.raw.get("quality"), Check)

    @property
    def details(self) -> dict[str, Any]:
        return self._dict("details")


class VisModel(_View):
    """``models.<model>``: one network's visualizations."""

    checkpoint = _Field[Any]()

    @property
    def methods(self) -> dict[str, VisMethod]:
        return _entries(self.raw.get("methods"), VisMethod)


class VisResults(_View):
    """A whole ``vis.json``."""

    @property
    def models(self) -> dict[str, VisModel]:
        return _entries(self.raw.get("models"), VisModel)

    def quality_figures(self, model: str | None = None) -> list[tuple[str, Check]]:
        """``("model/method/figure", figure)`` for every quality figure (of one model, if given)."""
        return [
            (f"{mname}/{meth}/{fname}", f)
            for mname, m in self.models.items()
            if model is None or mname == model
            for meth, entry in m.methods.items()
            for fname, f in entry.quality.items()
        ]
