"""Trained routing models shipped with the package, usable by name from any directory.

Each lives in ``configs/routers/<name>/`` as ``blis train`` wrote it (``model.zip``,
``config.yaml``, ``vecnormalize.pkl``; or ``config.yaml`` and ``rllib_checkpoint/`` with
``--backend rllib``) and is named after its scenario
(``routing-heterogeneous`` was trained on the ``heterogeneous`` scenario).
``--routing-model NAME`` and ``blis evaluate --agent NAME`` accept these names.
"""

from __future__ import annotations

from pathlib import Path

from .datafiles import shipped_dir


def _folder():
    return shipped_dir("routers")


def shipped_models() -> list[str]:
    """Names of the shipped trained models."""
    folder = _folder()
    if not folder.is_dir():
        return []
    return sorted(
        f.name
        for f in folder.iterdir()
        if f.is_dir() and ((f / "model.zip").is_file() or (f / "rllib_checkpoint").is_dir())
    )


def model_location(name_or_path: str) -> str:
    """An existing path as it is; else a shipped model's folder; else ``name_or_path`` unchanged
    (so the caller's error names what was given)."""
    if not name_or_path or Path(name_or_path).exists():
        return name_or_path
    if name_or_path in shipped_models():
        return str(_folder() / name_or_path)
    return name_or_path
