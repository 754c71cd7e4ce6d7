"""Fixtures for every test folder, and each folder's markers.

The folders are the kinds of test: ``unit/`` (the code on its own terms), ``parity/`` (against
recorded BLIS runs), ``integration/server/`` (starts HTTP servers on localhost),
``integration/ray/`` (starts Ray on localhost), ``docs/`` (the documentation site and its
commands). Shared helpers live in ``testkit/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blis_gym.cli.app import main

TESTS = Path(__file__).resolve().parent
# Folder (relative to tests/) -> the markers every test in it carries.
FOLDER_MARKERS = {
    "unit": ("unit",),
    "parity": ("parity",),
    "integration/server": ("integration", "server"),
    "integration/ray": ("integration", "multinode"),
    "docs": ("docs",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.relative_to(TESTS).as_posix()
        markers = FOLDER_MARKERS.get(folder)
        if markers is None:
            raise pytest.UsageError(f"{item.nodeid}: test files live in one of tests/{{{', '.join(FOLDER_MARKERS)}}}")
        for name in markers:
            item.add_marker(name)


@pytest.fixture
def blis(capsys):
    """Run ``blis ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def _run(*args: str):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture(scope="module")
def ray_local(request):
    """One embedded Ray (2 CPUs) shared by a module's tests that need it; shut down after the
    module, so that no Ray thread outlives it into other modules' tests.

    Commands under test reuse it (``blis_gym.distributed.ray_session`` joins a connected Ray).
    Only tests under ``integration/ray`` (marker ``multinode``) may start Ray."""
    if "multinode" not in FOLDER_MARKERS.get(request.path.parent.relative_to(TESTS).as_posix(), ()):
        pytest.fail(f"{request.node.nodeid} starts Ray: move it to tests/integration/ray")
    ray = pytest.importorskip("ray", reason="needs the distributed extra (pip install 'blis-gym[distributed]')")
    from blis_gym.distributed import ray_session

    with ray_session(workers=2) as connected:
        yield connected
    assert not ray.is_initialized()
