"""The documentation site builds cleanly, its generated tables come from the code, and the
README stays a short front page whose links lead somewhere."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docs, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 250
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
ATTR_ID = re.compile(r"\{\s*#([\w-]+)\s*\}\s*$")


def _load_hook():
    spec = importlib.util.spec_from_file_location("docs_generated_hook", ROOT / "docs" / "hooks" / "generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading; for plain headings GitHub's too."""
    explicit = ATTR_ID.search(heading)
    if explicit:
        return explicit.group(1)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in page.read_text("utf-8").splitlines():
        if line.startswith(("```", "~~~")):
            fenced = not fenced
        m = None if fenced else HEADING.match(line)
        if m:
            anchors.add(_slug(m.group(1)))
    return anchors


def test_mkdocs_build_strict(tmp_path: Path):
    pytest.importorskip("mkdocs", reason="needs the docs extra (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="needs the docs extra (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert (tmp_path / "site" / "index.html").is_file(), "index.md was not built"
    for page in ("cli", "environments", "results", "differences"):
        assert (tmp_path / "site" / page / "index.html").is_file(), f"{page}.md was not built"
    cli = (tmp_path / "site" / "cli" / "index.html").read_text("utf-8")
    assert "<!-- generated:" not in cli and "--kv-cpu-blocks" in cli, "the CLI tables were not generated"


def test_generated_tables_come_from_the_code():
    pytest.importorskip("mkdocs", reason="needs the docs extra (pip install -e '.[docs]')")
    import typer

    from blis_gym.cli.app import app
    from blis_gym.envs import observation

    hook = _load_hook()
    run = typer.main.get_command(app).commands["run"]
    table = hook.expand("<!-- generated: command run -->")
    for param in run.params:
        shown = f"`{param.opts[0]}`" in table
        assert shown != bool(getattr(param, "hidden", False)), f"{param.opts[0]}: hidden={param.hidden}, shown={shown}"
    features = hook.expand("<!-- generated: observation-features -->")
    for name, _ in (*observation.INSTANCE_FEATURES, *observation.REQUEST_FEATURES):
        assert f"`{name}`" in features
    assert f"`{len(observation.INSTANCE_FEATURES)}N + {len(observation.REQUEST_FEATURES)}`" in features


def test_generator_errors_and_undescribed_names_fail_the_build(caplog):
    pytest.importorskip("mkdocs", reason="needs the docs extra (pip install -e '.[docs]')")
    from mkdocs.exceptions import PluginError

    hook = _load_hook()
    with pytest.raises(PluginError, match="unknown placeholder"):
        hook.expand("<!-- generated: no-such-table -->")
    with pytest.raises(PluginError, match="no command"):
        hook.expand("<!-- generated: command no-such-command -->")
    with caplog.at_level("WARNING", logger="mkdocs.hooks.generated"):
        assert (
            hook.expand("Only `default` here.\n<!-- generated: described scenarios -->\n").strip()
            == "Only `default` here."
        )
    assert "prefix-heavy" in caplog.text  # a scenario the page does not describe: a warning, fatal under --strict


def test_readme_is_short():
    lines = README.read_text("utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (limit {README_MAX_LINES})"


def test_readme_relative_links_point_at_files():
    text = README.read_text("utf-8")
    links = [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t)]
    assert len(links) >= 10, "the README should link its features to the docs pages"
    for target in links:
        path, _, anchor = target.partition("#")
        page = (README.parent / path).resolve() if path else README
        assert page.exists(), f"README.md links to {target}, which does not exist"
        if anchor and page.suffix == ".md":
            assert anchor in _anchors(page), f"README.md links to {target}: no heading with that anchor"


def test_docs_pages_are_all_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f" {page.name}" in nav, f"docs/{page.name} is not in mkdocs.yml's nav"
