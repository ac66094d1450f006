"""The "did you mean ...?" hint of our error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(name, choices: Iterable, template: str = " (did you mean {!r}?)") -> str:
    """``template`` filled with the closest of ``choices`` to ``name``, or ``''`` if none is
    close (difflib's default cutoff)."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return template.format(match[0]) if match else ""
