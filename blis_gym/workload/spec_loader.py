"""Reading ``--workload-spec``: a file path or a shipped spec's name, expanded and validated once.

Loading goes: decode the YAML strictly (:mod:`blis_gym.config.yamltyped`);
expand ``inference_perf`` or ``servegen_data`` into clients when the spec has
none; read empirical length laws given as files; validate everything. BLIS
validates before it expands, so it rejects a spec with only an
``inference_perf`` block; we expand first and run it.

Relative paths inside a spec (``servegen_data.path``, an empirical ``file``)
are looked up next to the spec file first, then in the current directory (where
BLIS looks). Loaded specs are cached per file version.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..config import yamltyped
from ..config.datafiles import shipped_dir, shipped_names
from ..errors import ConfigError, WorkloadError
from . import inference_perf, servegen
from .spec import ClientSpec, DistSpec, WorkloadSpec, validate, validate_inference_perf

log = logging.getLogger("blis_gym")


def _spec_dir():
    return shipped_dir("specs")


def shipped_specs() -> list[str]:
    """Names of the workload specs installed with the package (``configs/specs/*.yaml``)."""
    return shipped_names("specs")


def shipped_spec_description(name: str) -> str:
    """The first comment line of a shipped spec (its one-line summary)."""
    for line in (_spec_dir() / f"{name}.yaml").read_text("utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _locate(name_or_path: str) -> tuple[str, Optional[Path], str]:
    """(text, folder for relative paths, display name) of a spec file or shipped name."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), path.resolve().parent, name_or_path
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--workload-spec {name_or_path}: cannot read ({exc})") from None
    if name_or_path in shipped_specs():
        return (_spec_dir() / f"{name_or_path}.yaml").read_text("utf-8"), None, name_or_path
    if path.is_dir():
        raise ConfigError(f"--workload-spec {name_or_path}: is a directory, expected a YAML file")
    raise ConfigError(
        f"--workload-spec {name_or_path}: no such file or shipped spec (shipped: {', '.join(shipped_specs())})"
    )


def _find(relative: str, folder: Optional[Path]) -> Path:
    path = Path(relative)
    if not path.is_absolute() and folder is not None and (folder / path).exists():
        return folder / path
    return path


def _read_pdf_file(where: str, key: str, d: DistSpec, folder: Optional[Path]) -> DistSpec:
    """An empirical law whose PDF is in a file (a YAML/JSON mapping token_count: probability)."""
    if d.type != "empirical" or not d.file:
        return d
    if d.params:
        raise ConfigError(f"{where}: {key}: give the empirical PDF either inline (params) or in a file, not both")
    path = _find(d.file, folder)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {key}.file: cannot read {d.file} ({getattr(exc, 'strerror', exc)})") from None
    pdf = yamltyped.decode(text, dict[str, float], f"{where}: {key}.file {d.file}")
    return replace(d, params=pdf, file="")


def _with_pdf_files(where: str, c: ClientSpec, i: int, folder: Optional[Path]) -> ClientSpec:
    at = f"clients[{i}]"
    changes = {
        k: _read_pdf_file(where, f"{at}.{k}", getattr(c, k), folder)
        for k in ("input_distribution", "output_distribution")
    }
    if c.multimodal is not None:
        mm = c.multimodal
        changes["multimodal"] = replace(
            mm,
            **{
                f.name: _read_pdf_file(where, f"{at}.multimodal.{f.name}", getattr(mm, f.name), folder)
                for f in mm.__dataclass_fields__.values()
            },
        )
    if c.reasoning is not None:
        d = c.reasoning.reason_ratio_distribution
        changes["reasoning"] = replace(
            c.reasoning,
            reason_ratio_distribution=_read_pdf_file(where, f"{at}.reasoning.reason_ratio_distribution", d, folder),
        )
    return replace(c, **changes)


def expand(spec: WorkloadSpec, where: str, folder: Optional[Path]) -> WorkloadSpec:
    """Clients from ``inference_perf`` or ``servegen_data`` when the spec lists none."""
    if spec.inference_perf is not None:
        if spec.clients:
            log.warning("%s: inference_perf is ignored because the spec lists clients", where)
        else:
            validate_inference_perf(where, spec.inference_perf)
            category, clients = inference_perf.expand(spec.inference_perf)
            spec = replace(
                spec,
                clients=clients,
                category=spec.category or category,
                aggregate_rate=spec.aggregate_rate
                if spec.aggregate_rate > 0
                else inference_perf.mean_rate(spec.inference_perf),
            )
    if spec.servegen_data is not None:
        if spec.clients:
            log.warning("%s: servegen_data is ignored because the spec has clients", where)
        else:
            sg = spec.servegen_data
            if not sg.path:
                raise ConfigError(f"{where}: servegen_data.path: required (a folder of ServeGen chunk files)")
            if sg.span_start < 0 or sg.span_end < 0 or (sg.span_end and sg.span_end <= sg.span_start):
                raise ConfigError(
                    f"{where}: servegen_data: need 0 <= span_start < span_end (seconds; 0 = open), "
                    f"got [{sg.span_start}, {sg.span_end})"
                )
            try:
                clients = servegen.servegen_clients(sg, _find(sg.path, folder))
            except WorkloadError as exc:
                raise WorkloadError(f"{where}: {exc}") from None
            spec = replace(spec, clients=clients)
    return replace(spec, clients=tuple(_with_pdf_files(where, c, i, folder) for i, c in enumerate(spec.clients)))


@functools.lru_cache(maxsize=32)
def _load(name_or_path: str, version: tuple) -> WorkloadSpec:
    text, folder, name = _locate(name_or_path)
    where = f"--workload-spec {name}"
    spec = expand(yamltyped.decode(text, WorkloadSpec, where), where, folder)
    validate(where, spec)
    return spec


def load_workload_spec(name_or_path: str) -> WorkloadSpec:
    """The expanded, validated spec of a file path or shipped name; raises ConfigError/WorkloadError."""
    try:
        st = os.stat(name_or_path)
        version: tuple = (st.st_mtime_ns, st.st_size, os.getcwd())
    except OSError:
        version = (os.getcwd(),)
    return _load(name_or_path, version)


__all__ = ["load_workload_spec", "shipped_specs", "shipped_spec_description", "expand"]
