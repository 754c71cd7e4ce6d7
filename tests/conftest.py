"""Fixtures for every test folder, and each folder's markers.

The folders are the kinds of test: ``unit/`` (the code on its own terms), ``parity/`` (against
recorded BLIS runs), ``integration/server/`` (starts HTTP servers on localhost),
``integration/ray/`` (starts Ray on localhost), ``docs/`` (the documentation site and its
commands). Shared helpers live in ``testkit/``.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
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
    module (``ray.shutdown()`` ends Ray's threads: ``_module_stops_its_threads`` checks), so that
    the next module starts with no Ray connected.

    Commands under test reuse it (``blis_gym.distributed.ray_session`` joins a connected Ray).
    Only tests under ``integration/ray`` (marker ``multinode``) may start Ray."""
    if "multinode" not in FOLDER_MARKERS.get(request.path.parent.relative_to(TESTS).as_posix(), ()):
        pytest.fail(f"{request.node.nodeid} starts Ray: move it to tests/integration/ray")
    ray = pytest.importorskip("ray", reason="needs the distributed extra (pip install 'blis-gym[distributed]')")
    from blis_gym.distributed import ray_session

    with ray_session(workers=2) as connected:
        yield connected
    assert not ray.is_initialized()


# --- guards: a test leaves the process as it found it --------------------------------------------


def _refusing(name: str, real):
    def refuse(*args, **kwargs):
        config = args[0] if args else kwargs.get("config")
        if name == "dictConfig" and isinstance(config, dict) and config.get("incremental"):
            return real(*args, **kwargs)  # changes levels only, closes nothing
        raise RuntimeError(
            f"logging.config.{name}() in the test process: it closes every logging handler alive in it, "
            "and absl's (imported with ray.rllib) then closes the stream it was made with, which under "
            "pytest is a capture file: pytest loses its stderr. Keep the library from configuring "
            "logging (uvicorn.Config(log_config=None)) or run it in a subprocess."
        )

    return refuse


@pytest.fixture(scope="session", autouse=True)
def _no_process_wide_logging_config():
    """No test (or library it calls) may reconfigure logging process-wide."""
    import logging.config

    with pytest.MonkeyPatch.context() as mp:
        for name in ("dictConfig", "fileConfig"):
            mp.setattr(logging.config, name, _refusing(name, getattr(logging.config, name)))
        yield


_STARTED_IN: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()


@pytest.fixture(autouse=True)
def _note_new_threads(request):
    """Remembers which test a thread appeared in (for the module's check below), and that no test
    outside ``tests/integration/ray`` left Ray running."""
    before = set(threading.enumerate())
    yield
    for t in threading.enumerate():
        if t not in before:
            _STARTED_IN.setdefault(t, request.node.nodeid)
    ray = sys.modules.get("ray")
    if ray is not None and request.node.get_closest_marker("multinode") is None and ray.is_initialized():
        pytest.fail(f"{request.node.nodeid} left Ray running: tests that start Ray live in tests/integration/ray")


@pytest.fixture(scope="module", autouse=True)
def _module_stops_its_threads():
    """Every thread a module's tests or fixtures start must have ended once the module's fixtures
    are torn down (a few seconds' grace for threads on their way out): a leftover one runs on
    into other modules' tests, with whatever it holds (sockets, Ray, a stderr since swapped)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    left = []
    for t in threading.enumerate():
        if t in before or t is threading.current_thread():
            continue
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            left.append(t)
    if left:
        names = "; ".join(
            f"{t.name!r} ({type(t).__module__}.{type(t).__qualname__}"
            f"{', target ' + t._target.__qualname__ if getattr(t, '_target', None) else ''}), "
            f"started in {_STARTED_IN.get(t, 'a module-scoped fixture')}"
            for t in left
        )
        pytest.fail(f"{len(left)} thread(s) still running after this module's teardown: {names}", pytrace=False)
