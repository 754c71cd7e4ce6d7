"""MkDocs hook: tables that repeat the code are generated from the code.

A page holds a placeholder on a line of its own::

    <!-- generated: NAME [ARGUMENT] -->

and ``on_page_markdown`` replaces it with Markdown built from the installed package:

- ``command NAME``: a command's help text and options table (``blis run``'s grouped by the help
  panels of ``blis run --help``), from the Typer app ``blis_gym.cli.app.app``;
- ``observation-features``: the environments' observation, from ``blis_gym.envs.observation``;
- ``workload-presets``: the ``--workload`` presets, from the shipped ``workloads.yaml``;
- ``shipped KIND``: the names of what ships (``specs``, ``bundles``, ``scenarios``, ``sweeps``,
  ``recipes``, ``routers``), from the functions that list them;
- ``described KIND``: nothing, but a warning for each shipped name of that kind that no code
  span of the rest of the page mentions, so ``mkdocs build --strict`` fails until a
  hand-written table (one that carries measured figures, say) describes it.

An unknown placeholder fails the build. Only stable entry points are imported, inside the
functions, so the hook costs nothing on pages without placeholders.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.generated")

PLACEHOLDER = re.compile(r"^<!-- generated: ([a-z0-9-]+)(?: +([^ >]+))? -->[ \t]*$", re.M)


def _cell(text: object) -> str:
    """Text for one table cell: one line, pipes and angle brackets escaped."""
    s = " ".join(str(text).split())
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- commands


def _click_command(name: str):
    import typer

    from blis_gym.cli.app import app

    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    if name not in commands:
        raise PluginError(f"generated: no command {name!r} in blis (have: {', '.join(commands)})")
    return commands[name]


def _default(param) -> str:
    if getattr(param, "required", False):
        return "(required)"
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return _cell(shown)
    value = param.default
    if getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", None):
        return "on" if value else "off"
    if value is None or value == "" or value == [] or value == ():
        return ""
    if isinstance(value, float):
        value = f"{value:g}"
    return f"`{_cell(value)}`"


def _flag(param) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}` (argument)"
    return ", ".join(f"`{o}`" for o in (*param.opts, *getattr(param, "secondary_opts", ())))


def _command(name: str | None) -> str:
    if not name:
        raise PluginError("generated: command needs a command name, e.g. <!-- generated: command run -->")
    cmd = _click_command(name)
    params = [p for p in cmd.params if not getattr(p, "hidden", False)]
    panels: dict[str, list[tuple[str, ...]]] = {}
    for p in params:
        panel = getattr(p, "rich_help_panel", None) or ""
        panels.setdefault(panel, []).append((_flag(p), _default(p), _cell(getattr(p, "help", "") or "")))
    out = []
    if cmd.help:
        paragraphs = [
            " ".join(par.split()).replace("<", "&lt;").replace("*", "\\*")
            for par in cmd.help.split("\n\n")
            if par.strip()
        ]
        out.append("\n>\n".join(f"> {par}" for par in paragraphs))
    header = ("Option", "Default", "Meaning")
    if list(panels) == [""]:
        out.append(_table(header, panels[""]))
    else:
        for panel, rows in panels.items():
            out.append(f"### {panel or 'Other options'}\n\n" + _table(header, rows))
    return "\n\n".join(out)


# ------------------------------------------------------------------------------- observation


def _observation(_: str | None) -> str:
    from blis_gym.envs import observation as obs

    n_inst, n_req = len(obs.INSTANCE_FEATURES), len(obs.REQUEST_FEATURES)
    lines = [
        f"The vector has {n_inst} values per instance and {n_req} more, "
        f"`{n_inst}N + {n_req}` in all (`N` instances), in this order:",
        _table(
            ("#", "feature (per instance, in instance order)", "scaling"),
            [(str(i), f"`{n}`", _cell(m)) for i, (n, m) in enumerate(obs.INSTANCE_FEATURES)],
        ),
        _table(
            ("#", "feature (the request, then the clock)", "scaling"),
            [(f"{n_inst}N + {i}", f"`{n}`", _cell(m)) for i, (n, m) in enumerate(obs.REQUEST_FEATURES)],
        ),
        f"With the env option `cache_observation: true` (set by the `prefix-heavy` and "
        f"`mooncake-conversation` scenarios) each instance gains one value after `{obs.INSTANCE_FEATURES[-1][0]}`, "
        f"`{n_inst + 1}N + {n_req}` in all: `{obs.CACHE_FEATURE[0]}`, the {_cell(obs.CACHE_FEATURE[1])}. "
        "It reads the same view as the `precise-prefix-cache` scorer; a model trained with it reads it "
        "in `blis run --routing-policy rl` too (its `config.yaml` records `cache_observation`).",
    ]
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------------- presets


def _presets(_: str | None) -> str:
    from importlib import resources

    import yaml

    data = yaml.safe_load((resources.files("blis_gym.configs") / "workloads.yaml").read_text("utf-8"))
    rows = []
    for name, p in data["presets"].items():
        rows.append(
            (
                f"`{name}`",
                f"{p['prompt_mean']} ± {p['prompt_stdev']} in [{p['prompt_min']}, {p['prompt_max']}]",
                f"{p['output_mean']} ± {p['output_stdev']} in [{p['output_min']}, {p['output_max']}]",
                str(p["prefix_tokens"]),
            )
        )
    return _table(("preset", "prompt tokens: mean ± stdev in [min, max]", "output tokens", "shared prefix"), rows)


# ---------------------------------------------------------------------------------- shipped


def _shipped_specs() -> list[str]:
    from blis_gym.workload.spec_loader import shipped_specs

    return shipped_specs()


def _shipped_bundles() -> list[str]:
    from blis_gym.config.bundle import shipped_bundles

    return shipped_bundles()


def _shipped_scenarios() -> list[str]:
    from blis_gym.envs.scenario import scenario_names

    return scenario_names()


def _shipped_sweeps() -> list[str]:
    from blis_gym.sweep.spec import shipped_sweeps

    return shipped_sweeps()


def _shipped_recipes() -> list[str]:
    from blis_gym.agents.config import agent_config_names

    return agent_config_names()


def _shipped_routers() -> list[str]:
    from blis_gym.config.routers import shipped_models

    return shipped_models()


# The folder of blis_gym.configs each kind lives in: the fallback when its lister has moved.
SHIPPED: dict[str, tuple[Callable[[], list[str]], str]] = {
    "specs": (_shipped_specs, "specs"),
    "bundles": (_shipped_bundles, "policies"),
    "scenarios": (_shipped_scenarios, "scenarios"),
    "sweeps": (_shipped_sweeps, "sweeps"),
    "recipes": (_shipped_recipes, "agents"),
    "routers": (_shipped_routers, "routers"),
}


def _shipped_names(kind: str) -> list[str]:
    lister, folder = SHIPPED[kind]
    try:
        return list(lister())
    except ImportError as exc:  # a lister moved: read the package data it lists
        from importlib import resources

        log.info("generated: shipped %s: %s; listing blis_gym.configs/%s instead", kind, exc, folder)
        root = resources.files("blis_gym.configs") / folder
        if kind == "routers":
            return sorted(f.name for f in root.iterdir() if f.is_dir() and not f.name.startswith("_"))
        return sorted(f.name[:-5] for f in root.iterdir() if f.name.endswith(".yaml"))


def _kind(kind: str | None) -> str:
    if kind not in SHIPPED:
        raise PluginError(f"generated: shipped/described need one of {', '.join(SHIPPED)}, got {kind!r}")
    return kind


def _shipped(kind: str | None) -> str:
    return ", ".join(f"`{n}`" for n in _shipped_names(_kind(kind)))


def _described(kind: str | None, page_text: str, where: str) -> str:
    """Nothing; a warning for each shipped name the page's own text does not mention in backticks."""
    spans = re.findall(r"`([^`\n]+)`", page_text)
    for name in _shipped_names(_kind(kind)):
        token = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
        if not any(token.search(span) for span in spans):
            log.warning(
                "%s: shipped %s %r is not described on the page (add it to the page's table)", where, kind, name
            )
    return ""


# ------------------------------------------------------------------------------------- hook

GENERATORS: dict[str, Callable[[str | None], str]] = {
    "command": _command,
    "observation-features": _observation,
    "workload-presets": _presets,
    "shipped": _shipped,
}


def expand(markdown: str, where: str = "page") -> str:
    """``markdown`` with every placeholder replaced (the hook's work, callable from tests)."""
    without = PLACEHOLDER.sub("", markdown)

    def replace(m: re.Match) -> str:
        name, arg = m.group(1), m.group(2)
        if name == "described":
            return _described(arg, without, where)
        if name not in GENERATORS:
            raise PluginError(
                f"{where}: unknown placeholder <!-- generated: {name} --> (known: described, {', '.join(GENERATORS)})"
            )
        return GENERATORS[name](arg)

    return PLACEHOLDER.sub(replace, markdown)


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    return expand(markdown, page.file.src_path)
