"""The documentation's commands run: every quick shell command and Python snippet in the code
blocks of README.md and docs/*.md is executed and must succeed.

Fenced blocks are read by their language:

- ``bash``/``sh``/``shell``: each command (continuation lines joined, comments dropped) runs in
  bash, ``blis`` as ``python -m blis_gym`` and ``python`` as this interpreter;
- ``console``: each ``$ `` line is a command; the lines after it are output, which must appear
  in the command's stdout, in order (``...`` stands for anything);
- ``python``: the block runs as a script;
- anything else (``yaml``, ``text``) is not run.

A block runs in a fresh temporary folder (commands of one block share it, so a block can write a
file and read it back). An HTML comment on the line just above a block changes that:

- ``<!-- docs-test: skip (why) -->``: not run (training for minutes, a server, Ray, placeholder
  paths); the reason is required;
- ``<!-- docs-test: cwd=repo (why) -->``: runs in the repository root (for files under
  ``tests/data/``; such a block must not write files).

The test counts what it runs and fails below a floor, so it cannot silently run nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docs, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell"}
RUN_LANGS = SHELL_LANGS | {"console", "python"}
TIMEOUT_S = 180  # per command; the slowest documented command (a short training) takes ~15 s

# Floors: what the pages exercise today is well above these; falling under one means the
# parser or the markers stopped finding the blocks, not that the pages got shorter.
MIN_COMMANDS = 25
MIN_SNIPPETS = 3
MIN_CHECKED_OUTPUTS = 3

DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(skip|cwd=repo)\s*(\((?P<why>[^)]+)\))?\s*-->$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)  # console output lines, in order


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    directive: str = ""  # "", "skip" or "cwd=repo"
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[Command]:
        if self.lang in SHELL_LANGS:
            return [Command(c) for c in _shell_commands(self.body)]
        if self.lang == "console":
            return _console_commands(self.body)
        return []


def _blocks(page: Path) -> list[Block]:
    lines = page.read_text("utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group("fence"), m.group("lang").lower(), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        block = Block(page, start + 1, lang, "\n".join(body) + "\n")
        above = start - 1
        if above >= 0 and lines[above].strip().startswith("<!-- docs-test"):
            d = DIRECTIVE.match(lines[above].strip())
            if not d:
                raise AssertionError(f"{block.id}: unreadable directive {lines[above]!r}")
            block.directive, block.reason = d.group(1), (d.group("why") or "").strip()
        blocks.append(block)
    return blocks


def _join_continuations(text: str) -> list[str]:
    out, current = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def _shell_commands(text: str) -> list[str]:
    return [c.strip() for c in _join_continuations(text) if c.strip() and not c.strip().startswith("#")]


def _console_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
            commands.append(Command(cmd.strip()))
        elif commands:
            commands[-1].expected.append(line.rstrip())
        i += 1
    return commands


ALL_BLOCKS = [b for page in PAGES for b in _blocks(page)]
RUN_BLOCKS = [b for b in ALL_BLOCKS if b.lang in RUN_LANGS and b.directive != "skip"]
SKIPPED = [b for b in ALL_BLOCKS if b.directive == "skip"]

PRELUDE = 'blis() { "$DOCS_PY" -m blis_gym "$@"; }\npython() { "$DOCS_PY" "$@"; }\n'


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DOCS_PY"] = sys.executable
    env["MPLBACKEND"] = "Agg"  # charts (--plot) without a display
    return env


def _check_output(cmd: Command, stdout: str, where: str) -> None:
    """Each expected line (``...`` skipped) appears in ``stdout``, in order."""
    got = [line.rstrip() for line in stdout.splitlines()]
    pos = 0
    for want in cmd.expected:
        if want.strip() in ("", "..."):
            continue
        try:
            pos = got.index(want, pos) + 1
        except ValueError:
            raise AssertionError(
                f"{where}: `{cmd.text}` did not print {want!r} (in this order); its output:\n" + stdout[-4000:]
            ) from None


def _run_block(block: Block, tmp_path: Path) -> None:
    cwd = ROOT if block.directive == "cwd=repo" else tmp_path
    env = _env()
    if block.lang == "python":
        script = tmp_path / "snippet.py"
        script.write_text(block.body, "utf-8")
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert proc.returncode == 0, f"{block.id}: the Python snippet failed:\n{proc.stderr[-4000:]}"
        return
    for cmd in block.commands():
        proc = subprocess.run(
            ["bash", "-c", PRELUDE + cmd.text],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert proc.returncode == 0, (
            f"{block.id}: `{cmd.text}` exited {proc.returncode}:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
        )
        _check_output(cmd, proc.stdout, block.id)


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_documented_block_runs(block: Block, tmp_path: Path):
    _run_block(block, tmp_path)


def test_a_healthy_number_of_commands_is_exercised():
    commands = [c for b in RUN_BLOCKS for c in b.commands()]
    snippets = [b for b in RUN_BLOCKS if b.lang == "python"]
    checked = [c for c in commands if any(line.strip() not in ("", "...") for line in c.expected)]
    assert len(commands) >= MIN_COMMANDS, f"only {len(commands)} documented commands run"
    assert len(snippets) >= MIN_SNIPPETS, f"only {len(snippets)} Python snippets run"
    assert len(checked) >= MIN_CHECKED_OUTPUTS, f"only {len(checked)} console outputs checked"
    assert all(b.commands() for b in RUN_BLOCKS if b.lang != "python"), "a runnable block has no command"


def test_every_skip_says_why_and_points_at_a_runnable_block():
    for block in SKIPPED:
        assert block.reason, f"{block.id}: docs-test: skip needs a reason in parentheses"
        assert block.lang in RUN_LANGS, f"{block.id}: a skip marker above a {block.lang or 'plain'} block"


def test_commands_only_call_what_the_test_can_run():
    """A runnable block calls ``blis`` or ``python``: anything else (a server, Ray, curl) must be
    marked skip, so nothing here reaches outside this machine or starts a cluster."""
    allowed = {"blis", "python"}
    for block in RUN_BLOCKS:
        for cmd in block.commands():
            program = shlex.split(cmd.text, comments=True)[0]
            assert program in allowed, f"{block.id}: `{cmd.text}` runs {program!r}; mark the block skip"
            words = cmd.text.split()
            assert "--address" not in words and "--ray" not in words and "rllib" not in words, (
                f"{block.id}: `{cmd.text}` needs Ray; mark the block skip"
            )
            if program == "blis":
                sub = shlex.split(cmd.text, comments=True)[1:2]
                assert sub != ["serve"] and sub != ["observe"], f"{block.id}: `{cmd.text}` needs a server"
                if sub == ["sweep"]:
                    assert "--serial" in cmd.text, f"{block.id}: `{cmd.text}` starts Ray (add --serial or skip)"
