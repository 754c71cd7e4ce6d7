"""Writing output files whole or not at all."""

from __future__ import annotations

import os
import tempfile

from .errors import BlisError


def write_atomic(path: str, text: str, flag: str = "--results-path") -> None:
    """Write ``text`` to ``path`` via a temporary file, so a failure leaves no half-written file.

    ``flag`` names the option that chose the path, for error messages. The file gets the
    usual permissions (0666 less the umask), not the temporary file's 0600.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".blis-", dir=directory)
    except OSError as exc:
        raise BlisError(f"{flag} {path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise BlisError(f"{flag} {path}: cannot write: {exc.strerror}") from None
        raise
