"""Reading input files that may be gzip-compressed, and writing output files whole or not at all."""

from __future__ import annotations

import csv
import gzip
import io
import os
import tempfile
from typing import IO, Union

from .errors import BlisError

# Trace rows may hold a whole prompt's token ids (a 126k-token prompt is a 1 MB field).
csv.field_size_limit(2**31 - 1)


def open_text(path: Union[str, os.PathLike]) -> IO[str]:
    """``path`` as UTF-8 text for the csv and json readers, decompressed when it is gzip (told
    by its first bytes, not its name)."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def write_atomic(path: str, text: "str | bytes", flag: str = "--results-path") -> None:
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
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
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
