"""Helpers for the book itself, not for the models it teaches.

``glue`` is used by the chapter notebooks; :mod:`llmzero.book.sphinxext` and
:mod:`llmzero.book.build` build the site.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` so the chapter's prose can show it with ``{glue}`name```.

    This is myst-nb's ``glue`` when myst-nb is installed (the book build, a local clone). On
    Colab or Binder without it, the value is simply displayed when ``display`` is true, so the
    notebook runs the same everywhere.

    NumPy and PyTorch scalars (``np.float64(0.25)``, ``torch.tensor(3)``) are stored as plain
    Python numbers, because the site formats glued numbers (``{glue:text}`name:.3f```) by
    parsing their text, which must read ``0.25``, not ``np.float64(0.25)``.
    """
    value = _plain_number(value)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)


def _plain_number(value: Any) -> Any:
    """A zero-dimensional NumPy/PyTorch value as a Python number; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value
