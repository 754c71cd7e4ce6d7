"""User-facing error types.

Every error a user can cause (bad flag, bad file, unknown model) is a
:class:`BlisError`. The CLI prints its message on one line and exits with
code 2; library callers can catch it.
"""


class BlisError(Exception):
    """Base class for user-facing errors; the CLI prints the message and exits with code 2."""


class ConfigError(BlisError):
    """A configuration value or file is invalid."""


class WorkloadError(BlisError):
    """A workload definition (flags, CSV trace, spec) is invalid."""
