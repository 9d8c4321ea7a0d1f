"""Atomic writes: whatever the user made (results, models, checkpoints) survives a kill.

A file is written next to its destination and renamed over it; a directory is built under a
temporary name and renamed into place, so a reader sees either nothing or the whole thing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path`` to write (by name, e.g. a streaming encoder);
    it replaces ``path`` only if the block succeeds, and is removed if it fails.

    For outputs too large to hold as bytes (``atomic_write_bytes``): same folder, same rename,
    so a reader sees the old file or the whole new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _leftover_of(name: str) -> str | None:
    """The target a temporary name of ``atomic_path`` (``.{target}.{random}.tmp``) or
    ``atomic_dir`` (``.{target}.{random}.partial``, ``.{target}.old-{pid}``) stands for, else None."""
    if not name.startswith("."):
        return None
    for suffix in (".tmp", ".partial"):
        if name.endswith(suffix):
            target, _, token = name[1 : -len(suffix)].rpartition(".")
            return target if target and token else None
    target, sep, pid = name[1:].rpartition(".old-")
    return target if sep and target and pid.isdigit() else None


def remove_leftover_temps(folder: str | os.PathLike, targets=None, older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files and folders that writers of ``targets`` (names in ``folder``;
    None: any name) left when they were killed before their rename.

    ``atomic_path`` and ``atomic_dir`` clean up after a failure they see, not after ``kill -9``
    or a lost machine; the writer's retry picks a new name, so the old one stays (a checkpoint's
    is as large as the model). Only names exactly as those two make them are removed, and only
    ones last written over ``older_than_s`` ago. Call it when no writer of these targets can
    still be running (a run's end), or with an age no write in progress reaches.
    """
    folder = Path(folder)
    targets = None if targets is None else set(targets)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        target = _leftover_of(p.name)
        if target is None or (targets is not None and target not in targets):
            continue
        with contextlib.suppress(OSError):
            if now - p.lstat().st_mtime < older_than_s:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(final)
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
