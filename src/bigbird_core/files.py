"""Safe file access for checkpoint directories: confined reads, regular files only, whole-directory swaps.

Reading: :class:`OpenDirectory` holds one descriptor of the checkpoint directory and opens every file
relative to it, so all files of one load come from the same directory even while a writer swaps a new
checkpoint in (a file the writer already removed makes the load start over). Names are plain file names
(no separators, no ``..``); a symlink may be followed (the Hugging Face cache is made of them) but what it
points to must be a regular file: FIFOs, devices and directories are refused without blocking.

Writing: :func:`swap_in` builds nothing itself; the caller writes the complete checkpoint into a sibling
staging directory, then it is swapped in with one ``renameat2(RENAME_EXCHANGE)``. Every intermediate state
is safe: before the exchange the destination is the old checkpoint, after it the new one; the old one then
sits in the staging path and is deleted. Leftovers of killed writers (staging directories whose process is
gone) are removed by the next write to the same place.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

from .errors import BigBirdError, CheckpointError, CheckpointNotFoundError

T = TypeVar("T")
RETRIES = 20  # loads started over when a concurrent writer swapped the directory mid-read
_RENAME_EXCHANGE = 2
_STAGE = ".bigbird-tmp-"


def plain_name(name: Any, what: str) -> str:
    """``name`` if it is a plain file name (no directory part), else a :class:`CheckpointError`."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\0" in name or os.path.isabs(name)):  # fmt: skip
        raise CheckpointError(f"{what}: expected a plain file name inside the checkpoint directory, got {name!r}")
    return name


class OpenDirectory:
    """A checkpoint directory opened once; files are opened relative to it (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise CheckpointNotFoundError(f"{self.path}: no such checkpoint directory") from None
        except NotADirectoryError:
            raise CheckpointNotFoundError(f"{self.path}: not a checkpoint directory") from None
        except OSError as exc:
            raise CheckpointNotFoundError(f"{self.path}: cannot open ({exc.strerror})") from None

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> OpenDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def where(self, name: str) -> str:
        return os.path.join(self.path, name)

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def open(self, name: str) -> BinaryIO:
        """Open ``name`` for reading: a plain name, a regular file (symlinks followed), never blocking."""
        plain_name(name, self.where(name))
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK, dir_fd=self.fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise CheckpointNotFoundError(f"{self.where(name)}: cannot read ({exc.strerror})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CheckpointError(f"{self.where(name)}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")


def read_consistently(path: str, read: Callable[[OpenDirectory], T]) -> T:
    """``read(directory)`` on one open directory, started over when a writer swapped it mid-read."""
    for _ in range(RETRIES):
        with OpenDirectory(path) as directory:
            try:
                return read(directory)
            except (FileNotFoundError, BigBirdError) as exc:
                # a writer swapped a new checkpoint in and is deleting the one we hold (files vanish from
                # it one by one): read the new one; otherwise the fault is the checkpoint's own
                if not _same_directory(directory, path):
                    continue
                if isinstance(exc, FileNotFoundError):
                    raise CheckpointNotFoundError(f"{directory.where(str(exc.filename))}: missing") from None
                raise
    raise CheckpointError(f"{path}: kept changing while being read ({RETRIES} tries)")


def _same_directory(directory: OpenDirectory, path: str) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    held = os.fstat(directory.fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


# --------------------------------------------------------------------------------------------- writing
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target: str) -> None:
    """Remove staging directories of killed writers beside ``target`` (and inside it, an older layout)."""
    parent, name = os.path.split(target)
    pattern = re.compile(re.escape(f".{name}{_STAGE}") + r"(\d+)-")
    for folder, prefix_match in ((parent, pattern), (target, re.compile(re.escape(_STAGE)))):
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            m = prefix_match.match(entry)
            if m is None:
                continue
            pid = int(m.group(1)) if m.groups() else None
            if pid is None or not _alive(pid):
                shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)


@contextmanager
def staged(target: str) -> Iterator[str]:
    """Yield a fresh staging directory beside ``target`` (removed again on failure)."""
    parent, name = os.path.split(target)
    os.makedirs(parent or ".", exist_ok=True)
    clean_leftovers(target)
    stage = tempfile.mkdtemp(prefix=f".{name}{_STAGE}{os.getpid()}-", dir=parent or ".")
    try:
        yield stage
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage, ignore_errors=True)


def carry_over(target: str, stage: str, replaced: Callable[[str], bool]) -> list[str]:
    """Hard-link (or copy) the entries of ``target`` that the new checkpoint does not replace into ``stage``;
    returns the names of the replaced entries."""
    if not os.path.isdir(target):
        return []
    dropped = []
    for entry in os.listdir(target):
        if replaced(entry) or os.path.exists(os.path.join(stage, entry)):
            dropped.append(entry)
            continue
        src, dst = os.path.join(target, entry), os.path.join(stage, entry)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(src, dst)
    return sorted(dropped)


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fsync_tree(folder: str) -> None:
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if os.path.isfile(path) and not os.path.islink(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: str, b: str) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def swap_in(stage: str, target: str) -> None:
    """Make the complete checkpoint in ``stage`` visible at ``target`` in one step (see the module docstring).

    Where the system has no atomic exchange, the old directory is renamed aside first: a reader may then
    briefly find no checkpoint, but never a mix.
    """
    _fsync_tree(stage)
    if not os.path.lexists(target):
        try:
            os.rename(stage, target)
            return
        except OSError as exc:  # created meanwhile by another writer: exchange with it
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if _exchange(stage, target):
        shutil.rmtree(stage, ignore_errors=True)  # the old checkpoint, now at the staging path
        return
    aside = stage + "-old"
    os.rename(target, aside)
    os.rename(stage, target)
    shutil.rmtree(aside, ignore_errors=True)
