"""Reading the numbers and the verdict out of a generated sentence, so that a test of the conclusions checks what
they claim (every number, and which way the verdict goes) and not how they are worded.

- :func:`numbers`: every number a sentence states, in order (``+10.3 ± 2.5 points over 3 seeds`` is
  ``[10.3, 2.5, 3]``), leaving out those that are part of a name (``top-1``, ``L2``, ``2/255``);
- :func:`says`: which of a few verdicts a sentence gives (``says(s, "higher", "lower")``);
- :func:`about`: the one sentence of several on a topic, found by a word or two of the topic (``about(lines,
  "clean", "top-1")``); :func:`sentences` splits a paragraph into them; :func:`mentions`: whether a
  sentence says a word or phrase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A number standing on its own: signed, integer or decimal, not glued to a word, a hyphen or a slash.
NUMBER = re.compile(r"(?<![\w./−-])([-+−]?)(\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w/]|\.\d)")


def numbers(text: str) -> list[float]:
    """Every number ``text`` states, in order, with its sign (``-2.0`` and ``−2.0`` alike); integers come back as
    ``int``. Numbers inside a name (``top-1``, ``L2``, ``accuracy-vs-L2``, ``2/255``) are not counted."""
    out: list[float] = []
    for sign, digits in NUMBER.findall(text):
        value = float(digits) if "." in digits or "e" in digits else int(digits)
        out.append(-value if sign in ("-", "−") else value)
    return out


def mentions(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words (case-insensitive): ``survive`` is not in
    ``survives``."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


def says(text: str, *verdicts: str) -> str:
    """The first of ``verdicts`` that ``text`` says (whole words, case-insensitive): list a verdict that contains
    another before it (``"survives in sign only"`` before ``"survives"``, ``"neither"`` before ``"more"`` where a
    tie reads "neither model keeps consistently more"). Fails where it says none of them."""
    for v in verdicts:
        if mentions(text, v):
            return v
    raise AssertionError(f"none of {verdicts} in: {text}")


def sentences(text: str) -> list[str]:
    """``text`` split after each full stop that ends a sentence (one followed by a capital letter)."""
    return [s for s in re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip()) if s]


def about(lines: Iterable[str], *topic: str) -> str:
    """The only one of ``lines`` that mentions every word of ``topic`` (whole words, case-insensitive); fails
    where none or several do."""
    lines = list(lines)
    hits = [s for s in lines if all(mentions(s, t) for t in topic)]
    assert len(hits) == 1, f"{len(hits)} sentences about {topic} in:\n" + "\n".join(lines)
    return hits[0]
