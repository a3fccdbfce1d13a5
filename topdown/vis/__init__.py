"""What each network learned: feature visualization, attribution and dissection, with quality figures.

Small composable pieces, in the manner of Lucid/Lucent:

* :mod:`~topdown.vis.hooks`: activations by module name (``"layer2.0.conv1"``, ``"logits"``, ``"x@in"``),
  hooks that are always removed, redirected ReLUs.
* :mod:`~topdown.vis.objectives`: per-image objectives that add, subtract and scale
  (``channel("layer2", 3) - 0.4 * total_variation()``), with ``batch=`` selection.
* :mod:`~topdown.vis.param`: pixel and Fourier parameterizations, colour decorrelation from the training
  data, shared low-resolution components, starting from a real image.
* :mod:`~topdown.vis.transforms`: seeded random pad, jitter, scale and rotation, sized relative to the image.
* :func:`~topdown.vis.render.render`: the optimization loop; returns tensors, never shows or saves.

Methods built on them live in :mod:`~topdown.vis.methods`, one module per family, each method's settings,
algorithm and class together (:mod:`~topdown.vis.methods.classes`, :mod:`~topdown.vis.methods.features`,
:mod:`~topdown.vis.methods.inversion`, :mod:`~topdown.vis.methods.attribution`,
:mod:`~topdown.vis.methods.generative`; importing them loads the generator, captum and the data, so this package
does not), on the building blocks above and :mod:`~topdown.vis.units` (batched activation maximization of many
units, exported here), :mod:`~topdown.vis.dictionary`, :mod:`~topdown.vis.facets`,
:mod:`~topdown.vis.attribution` (captum) and :mod:`~topdown.vis.dissection`; :mod:`~topdown.vis.quality`
measures whether each did its job. ``python evaluate.py visualize`` (:mod:`~topdown.vis.cli`) runs every method
of the registry :data:`topdown.vis.methods.METHODS` with the settings of :class:`~topdown.vis.config.VisConfig`
(:mod:`~topdown.vis.runner` stores each result as it finishes).

Example::

    from topdown.vis import objectives as obj, param, render, standard_transforms
    p = param.image(64, batch=2, color=param.color_stats(train_images))
    o = obj.channel("layer2", 3, batch=0) + obj.channel("layer2", 7, batch=1) - 0.4 * obj.total_variation()
    result = render(net, o, p, standard_transforms(), steps=128)
"""

from . import objectives, param, quality, transforms
from .hooks import activations, capture, redirected_relu
from .objectives import Objective, as_objective
from .param import ColorStats, ImageParam, color_stats
from .recipe import Recipe
from .render import RenderResult, compare, evaluate, render
from .transforms import standard_transforms
from .units import visualize_channels, visualize_classes, visualize_neurons

__all__ = [
    "ColorStats",
    "ImageParam",
    "Objective",
    "Recipe",
    "RenderResult",
    "activations",
    "as_objective",
    "capture",
    "color_stats",
    "compare",
    "evaluate",
    "objectives",
    "param",
    "quality",
    "redirected_relu",
    "render",
    "standard_transforms",
    "transforms",
    "visualize_channels",
    "visualize_classes",
    "visualize_neurons",
]
