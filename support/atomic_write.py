"""Writing a file all at once or not at all: what every tool's output goes through."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write` writes, never leaving it half-written.

    The bytes go to a temporary file in the same directory, renamed over `path` once complete
    (with the mode `path` has, or a new file's); on any failure the temporary file is removed
    and `path` is left as it was."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.chmod(temporary, _new_file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _new_file_mode(path: Path) -> int:
    """The mode `path` has now, or the mode a newly created file gets under the umask
    (mkstemp creates its file readable by the owner only)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
