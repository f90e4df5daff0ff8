"""Writing a file all at once or not at all: what every tool's output goes through."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from einsum_opt.support.errors import UserError


def check_writable(path: Path) -> None:
    """UserError unless `path` can be created or replaced (checked before any work is done)."""
    directory = path.parent
    if not directory.is_dir():
        problem = "is not a directory" if directory.exists() else "does not exist"
        raise UserError(f"cannot write '{path}': directory '{directory}' {problem}")
    if path.is_dir():
        raise UserError(f"cannot write '{path}': it is a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"cannot write '{path}': directory '{directory}' is not writable")


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write` writes, never leaving it half-written.

    The bytes go to a temporary file in the same directory, renamed over `path` once complete
    (with the mode `path` has, or the mode a new file gets under the umask); on any failure the
    temporary file is removed and `path` is left as it was. A file-system failure is a
    UserError naming `path` (`cannot write 'x': ...`)."""
    path = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        check_writable(path)
        raise UserError(f"cannot write '{path}': {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.chmod(temporary, new_file_mode(path))
        os.replace(temporary, path)
    except OSError as e:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(e, IsADirectoryError) or path.is_dir():
            raise UserError(f"cannot write '{path}': it is a directory") from e
        raise UserError(f"cannot write '{path}': {e.strerror or e}") from e
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """`write_atomically` of `text` encoded as UTF-8."""
    data = text.encode("utf-8")

    def write(file: BinaryIO) -> None:
        file.write(data)

    write_atomically(path, write)


def new_file_mode(path: Path) -> int:
    """The mode `path` has now, or the mode a newly created file gets under the umask
    (mkstemp creates its file readable by the owner only)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask (read without changing it where the system allows)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_STAGING = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.staging")


def publish_directory(
    directory: Path, fill: Callable[[Path], None], stale: Callable[[str], bool]
) -> None:
    """Give `directory` the files `fill` writes into the folder it is passed, as one unit.

    `fill` writes into a temporary folder beside `directory`; only once it has finished is the
    folder renamed into place (when `directory` is missing or empty: one atomic rename), or
    its files renamed over their namesakes in `directory`, after removing the files of an
    earlier run that `stale` recognises and this one did not write; other files stay. SIGTERM
    and SIGINT wait until that is done. On any failure (SIGTERM included) the temporary
    folder is removed and `directory` is left as it was. A folder left by a process that was
    killed is removed by the next run."""
    directory = Path(os.path.abspath(directory))
    _remove_abandoned_staging(directory)
    try:
        staging = Path(
            tempfile.mkdtemp(
                prefix=f".{directory.name}.{os.getpid()}.", suffix=".staging", dir=directory.parent
            )
        )
    except OSError as e:
        raise UserError(
            f"cannot write '{directory}': cannot create a folder beside it: {e.strerror or e}"
        ) from e
    try:
        os.chmod(staging, 0o777 & ~current_umask())
        fill(staging)
        with _signals_deferred():
            _move_into_place(staging, directory, stale)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _move_into_place(staging: Path, directory: Path, stale: Callable[[str], bool]) -> None:
    if not directory.exists() or (directory.is_dir() and not any(directory.iterdir())):
        os.rename(staging, directory)  # replaces an empty directory too
        return
    written = {p.name for p in staging.iterdir()}
    for old in directory.iterdir():
        if old.name not in written and stale(old.name) and old.is_file():
            old.unlink()
    for new in staging.iterdir():
        os.replace(new, directory / new.name)
    staging.rmdir()


def _remove_abandoned_staging(directory: Path) -> None:
    """Remove temporary folders for `directory` whose process no longer runs."""
    try:
        entries = list(directory.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _STAGING.fullmatch(entry.name)
        if match is None or match["name"] != directory.name or not entry.is_dir():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _process_exists(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block is done (where the system allows)."""
    held = {signal.SIGTERM, signal.SIGINT}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
