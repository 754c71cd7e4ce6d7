"""Connecting to Ray (the ``distributed`` extra) for ``blis sweep``, ``blis evaluate --ray`` and RLlib.

:func:`ray_session` starts an embedded Ray in this process (the default), or joins a
running cluster given its address, and shuts down only what it started. An address
that does not answer fails within ``timeout_s`` with a :class:`ConfigError` (exit 2),
instead of Ray's own minutes of retries.

The cluster's nodes must have this same blis-gym installed; file paths in the work
sent to them should be absolute (they are read where the task runs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Iterator, Optional

from .errors import ConfigError

INSTALL_HINT = "pip install 'blis-gym[distributed]'"
# Keep embedded Ray quiet and local: no usage reporting, no dashboard.
_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


def need_ray(what: str = "this command") -> Any:
    """The ``ray`` module, or a ConfigError that says how to install it."""
    for key, value in _RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{what} needs Ray: {INSTALL_HINT}") from None
    return ray


def _host_port(address: str) -> Optional[tuple[str, int]]:
    """(host, port) of a ``host:port`` or ``ray://host:port`` address; None for ``auto``."""
    if address == "auto":
        return None
    text = address[len("ray://") :] if address.startswith("ray://") else address
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--address {address!r}: expected HOST:PORT (a Ray head's GCS address, as "
            f"'ray start --head' prints it), ray://HOST:PORT, or auto"
        )
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Raise ConfigError unless something accepts TCP connections at ``address`` within ``timeout_s``."""
    import socket  # lazy: every blis command imports this module, few connect anywhere

    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except socket.timeout:
        raise ConfigError(
            f"--address {address}: no answer within {timeout_s:g} s "
            f"(is a Ray head running there? start one with 'ray start --head')"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: cannot connect ({exc.strerror or exc}); "
            f"is a Ray head running there? start one with 'ray start --head'"
        ) from None


class RaySession:
    """A connection to Ray that starts in the background: :meth:`start` returns at once,
    :meth:`ready` says whether Ray is up, :meth:`wait` blocks until it is (or raises
    ConfigError), :meth:`close` shuts down what this session started.

    ``address``: empty for an embedded Ray with ``workers`` CPUs (default: every core), or a
    running cluster (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``), which must answer within
    ``timeout_s``. An already connected Ray (a test fixture, a notebook) is used as it is.
    """

    def __init__(
        self, address: str = "", workers: Optional[int] = None, timeout_s: float = 10.0, what: str = "this command"
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.ray = need_ray(what)
        self.address = address
        self.workers = workers
        self.timeout_s = timeout_s
        self.owned = False  # whether this session started (and must shut down) Ray
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[str] = None  # None while starting; "" once up

    def start(self, background: bool = True) -> "RaySession":
        """Begin connecting. ``background=False`` connects an embedded Ray in this thread (some
        of Ray's calls, ``ray.nodes()`` among them, hang after an init from another thread);
        a cluster address always connects in a thread, to honour the timeout."""
        ray = self.ray
        if ray.is_initialized():
            if self.address:
                check_reachable(self.address, self.timeout_s)
                current = ray.get_runtime_context().gcs_address
                if self.address not in ("auto", current) and not self.address.startswith("ray://"):
                    raise ConfigError(
                        f"--address {self.address}: this process is already connected to the "
                        f"Ray cluster at {current}; join another one from a new process"
                    )
            self._error = ""
            return self
        # Ray's own notices (token authentication on, as by default) are not ours to print.
        logging.getLogger("ray").setLevel(logging.ERROR)
        kwargs: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
        if self.address:
            check_reachable(self.address, self.timeout_s)
            kwargs["address"] = self.address
        else:
            # "local": a new Ray of our own, never a Ray that happens to run on this machine.
            kwargs.update(address="local", num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False)
        self.owned = True

        def target() -> None:
            try:
                ray.init(**kwargs)
                self._error = ""
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError...
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                self._error = f"{type(exc).__name__}: {first}"

        if not background and not self.address:
            target()
            return self
        # A thread: the caller can work meanwhile, and an address that half-answers (a proxy,
        # another service), which Ray retries for many seconds, can be given up on.
        self._thread = threading.Thread(target=target, name="ray-init", daemon=True)
        self._thread.start()
        return self

    def ready(self) -> bool:
        return self._error is not None

    def wait(self) -> Any:
        """The connected ``ray`` module; ConfigError if Ray did not start or answer in time."""
        if self._thread is not None:
            self._thread.join(self.timeout_s if self.address else None)
        where = f"--address {self.address}" if self.address else "local Ray"
        if self._error is None:
            raise ConfigError(
                f"{where}: no Ray cluster answered within {self.timeout_s:g} s "
                f"(something listens there, but not a Ray head?)"
            )
        if self._error:
            raise ConfigError(f"{where}: Ray did not start ({self._error})")
        return self.ray

    def close(self) -> None:
        if not self.owned:
            return
        if self._thread is not None and not self.address:
            self._thread.join()  # an embedded Ray still starting: let it finish, then stop it
        if self.ray.is_initialized():
            self.ray.shutdown()


@contextlib.contextmanager
def ray_session(
    address: str = "", workers: Optional[int] = None, timeout_s: float = 10.0, what: str = "this command"
) -> Iterator[Any]:
    """Yield the ``ray`` module connected as :class:`RaySession` connects, shutting down on
    exit what this call started."""
    session = RaySession(address, workers, timeout_s, what).start(background=False)
    try:
        yield session.wait()
    finally:
        session.close()


def cluster_cpus(ray: Any) -> int:
    """CPUs the connected cluster offers (at least 1)."""
    return max(int(ray.cluster_resources().get("CPU", 1)), 1)
