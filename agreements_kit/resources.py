"""Where the default clause library and templates are.

In a wheel they ship inside the package (``agreements_kit/_data/``, mapped by
pyproject.toml); in a source checkout or editable install they are the
top-level ``clauses/`` and ``templates/`` folders the design card fixes.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"agreements-kit is installed without its {name}/ folder")


def clauses_dir() -> Path:
    return _find("clauses")


def templates_dir() -> Path:
    return _find("templates")
