"""Reading the shipped data folder (``configs/``, installed as ``blis_gym.configs``) and the
user's data files, with one error style: ``ConfigError("<file>: <problem>")``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Union

from ..errors import ConfigError
from . import yamlio

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

Source = Union[Path, "Traversable"]

#: The trained-physics step-time model's global coefficients (read by blis_gym.plan.latency).
TRAINED_PHYSICS_FILE = "trained_physics.yaml"
TRAINED_PHYSICS_SCHEMA = "blis-gym/trained-physics/v1"

#: The production traces shipped in ``configs/traces/`` by name (its README: sources, licences).
SHIPPED_TRACES = {
    "mooncake-conversation": "mooncake_conversation_trace.jsonl.gz",
    "mooncake-synthetic": "mooncake_synthetic_trace.jsonl.gz",
    "azure-conversation": "AzureLLMInferenceTrace_conv.csv.gz",
    "azure-code": "AzureLLMInferenceTrace_code.csv.gz",
}


def fail(src: str, message: str) -> NoReturn:
    raise ConfigError(f"{src}: {message}")


def shipped_dir(sub: str = "") -> Source:
    """The shipped data folder, or its subfolder ``sub`` (``specs``, ``scenarios``...)."""
    try:
        top = resources.files("blis_gym.configs")
    except ModuleNotFoundError:
        # Not installed: the package-dir mapping is inactive, so read the repo's configs/.
        top = Path(__file__).resolve().parents[2] / "configs"
    return top.joinpath(sub) if sub else top


def shipped_names(sub: str) -> list[str]:
    """The names (file stems, sorted) of the YAML files shipped in ``configs/<sub>/``."""
    return sorted(f.name[:-5] for f in shipped_dir(sub).iterdir() if f.name.endswith(".yaml"))


def read_text(path: Source, src: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(src, "file not found")
    except IsADirectoryError:
        fail(src, "is a directory, expected a file")
    except (OSError, UnicodeDecodeError) as exc:
        fail(src, f"cannot read file ({exc})")


def read_yaml(path: Source, src: str, shipped: bool = False) -> Any:
    """A non-empty YAML document, read as BLIS's yaml.v3 reads it (:mod:`.yamlio`); ``shipped``
    marks one of our own data files (read faster)."""
    doc = yamlio.parse(read_text(path, src), src, shipped)
    if doc is None:
        fail(src, "file is empty")
    return doc


def read_json(path: Path, src: str) -> Any:
    try:
        return json.loads(read_text(path, src))
    except json.JSONDecodeError as exc:
        fail(src, f"invalid JSON at line {exc.lineno}: {exc.msg}")
