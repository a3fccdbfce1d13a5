"""Every method ``evaluate.py visualize`` runs, and :data:`METHODS`, the one registry of them (in the order they
run).

A method is found in one place: its settings dataclass, its algorithm (where no other method shares it) and its
:class:`~topdown.vis.methods.base.Method` class sit together in the module of its family:

* :mod:`.classes`: ``classes``, ``naive``, ``spectra``, ``multifaceted`` (whole classes);
* :mod:`.features`: ``channels``, ``neurons``, ``pairs``, ``interpolation``, ``diversity``, ``dictionary``,
  ``activation_grid`` (units of one layer);
* :mod:`.inversion`: ``dream``, ``caricature``, ``inversion`` (from real images);
* :mod:`.attribution`: ``attribution``, ``pyramid_attribution``, ``dissection`` (what drove a decision, what
  units detect);
* :mod:`.generative`: ``dgn_am``, ``ppgn``, ``priors`` (through a learned prior).

:mod:`.base` is what they share: the :class:`~topdown.vis.methods.base.Method` protocol, the run's
:class:`~topdown.vis.methods.base.VisContext` and one :class:`~topdown.vis.methods.base.Job`. Each method reads the
shared recipe from its job's context and its own numbers from its settings (``VisConfig.<method>``); nothing
changes a step count or a learning rate that is not an option.
"""

from __future__ import annotations

from .attribution import Attribution, Dissection, PyramidAttribution
from .base import Job, Method, MethodOutput, Outcome, VisContext
from .classes import Classes, Multifaceted, Naive, Spectra
from .features import ActivationGrid, Channels, Dictionary, Diversity, Interpolation, Neurons, Pairs
from .generative import DgnAm, Ppgn, Priors
from .inversion import Caricature, Dream, Inversion

#: The one registry: every method, in the order they run.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Classes(),
        Channels(),
        Neurons(),
        Naive(),
        Spectra(),
        Dream(),
        Caricature(),
        Inversion(),
        Pairs(),
        Interpolation(),
        Diversity(),
        Dictionary(),
        ActivationGrid(),
        Multifaceted(),
        Attribution(),
        PyramidAttribution(),
        Dissection(),
        DgnAm(),
        Ppgn(),
        Priors(),
    )
}

__all__ = ["METHODS", "Job", "Method", "MethodOutput", "Outcome", "VisContext"]
