"""Safe file changes: check first, back up, write atomically, undo.

Rules, in order:

1. Every target is checked before anything is written. A file whose mode has no write bit is
   refused even for root (``os.replace`` would otherwise replace it silently).
2. A backup set is written first: ``<config dir>/ccgate-backups/<UTC timestamp>/`` with a copy
   of each file that existed and ``manifest.json`` (what existed, its mode, and the SHA-256 of
   what setup wrote, so undo can tell whether someone changed the file since).
3. Each file is replaced atomically: a temp file in the same directory, ``fsync``, the original
   mode (and owner, when running as root), ``os.replace``, then ``fsync`` of the directory.
   A symlink (dotfile managers) is followed, and its target is replaced, not the link.
4. If writing the second file fails, the first is restored from memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BackupSet",
    "FileState",
    "SetupFileError",
    "apply_writes",
    "atomic_write",
    "backup_root",
    "latest_backup",
    "plan_restore",
    "read_state",
    "restore_backup",
]

MANIFEST = "manifest.json"
BACKUPS_DIR = "ccgate-backups"
NEW_FILE_MODE = 0o600  # settings hold the gateway token


class SetupFileError(Exception):
    """A file cannot be read or written; the message names the file and what to do."""


@dataclass(frozen=True)
class FileState:
    path: Path  # as the user knows it
    target: Path  # where the bytes live (symlinks followed)
    raw: bytes | None  # None: the file does not exist
    mode: int | None

    @property
    def existed(self) -> bool:
        return self.raw is not None


def read_state(path: Path) -> FileState:
    target = Path(os.path.realpath(path))
    try:
        raw = target.read_bytes()
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return FileState(path, target, None, None)
    except IsADirectoryError:
        raise SetupFileError(f"{path} is a directory, expected a JSON file") from None
    except PermissionError:
        raise SetupFileError(f"{path} cannot be read (permission denied); check its owner and mode") from None
    return FileState(path, target, raw, mode)


def backup_root(config_dir: Path) -> Path:
    """Where setup keeps its backup sets: next to the settings it changes."""
    return config_dir / BACKUPS_DIR


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_writable(state: FileState) -> None:
    """Raise SetupFileError unless ``state.target`` can be replaced."""
    target = state.target
    if state.existed:
        mode = state.mode or 0
        if not mode & 0o222 or not os.access(target, os.W_OK):
            raise SetupFileError(
                f"{state.path} is read-only (mode {mode:04o}); nothing was changed. "
                f"Make it writable (chmod u+w {state.path}) or edit it by hand."
            )
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SetupFileError(f"cannot write in {parent} (permission denied); nothing was changed")


def atomic_write(target: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if owner is not None and hasattr(os, "fchown"):
                with contextlib.suppress(OSError):
                    os.fchown(fh.fileno(), *owner)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _owner(target: Path) -> tuple[int, int] | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        st = target.stat()
    except OSError:
        return None
    return st.st_uid, st.st_gid


@dataclass(frozen=True)
class BackupSet:
    directory: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> list[dict[str, Any]]:
        files = self.manifest.get("files", [])
        return files if isinstance(files, list) else []


def _new_backup_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = root / stamp
    n = 1
    while True:
        try:
            candidate.mkdir(mode=0o700)
            return candidate
        except FileExistsError:
            candidate = root / f"{stamp}-{n}"
            n += 1


def apply_writes(writes: list[tuple[FileState, bytes]], backup_root: Path) -> BackupSet:
    """Back up and replace every file in ``writes``; all or nothing where the OS allows."""
    for state, _ in writes:
        check_writable(state)
    directory = _new_backup_dir(backup_root)
    entries: list[dict[str, Any]] = []
    for i, (state, data) in enumerate(writes):
        entry: dict[str, Any] = {
            "path": str(state.target),
            "existed": state.existed,
            "mode": state.mode,
            "backup": None,
            "written_sha256": sha256(data),
        }
        if state.raw is not None:
            name = f"{i}-{state.target.name}"
            atomic_write(directory / name, state.raw, 0o600, None)
            entry["backup"] = name
        entries.append(entry)
    manifest: dict[str, Any] = {
        "version": 1,
        "tool": "ccgate setup claude-code",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": entries,
        "undone": False,
    }
    _write_manifest(directory, manifest)
    done: list[FileState] = []
    try:
        for state, data in writes:
            mode = state.mode if state.mode is not None else NEW_FILE_MODE
            atomic_write(state.target, data, mode, _owner(state.target))
            done.append(state)
    except OSError as exc:
        for prev in done:
            with contextlib.suppress(OSError):
                _restore_one(prev.target, prev.raw, prev.mode)
        raise SetupFileError(
            f"writing {state.path} failed ({exc.strerror or exc}); the files were put back as they were"
        ) from None
    return BackupSet(directory, manifest)


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    atomic_write(directory / MANIFEST, data, 0o600, None)


def _restore_one(target: Path, raw: bytes | None, mode: int | None) -> None:
    if raw is None:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return
    atomic_write(target, raw, mode if mode is not None else NEW_FILE_MODE, _owner(target))


def list_backups(backup_root: Path) -> list[BackupSet]:
    out: list[BackupSet] = []
    try:
        dirs = sorted((p for p in backup_root.iterdir() if p.is_dir()), key=lambda p: p.name)
    except OSError:
        return out
    for d in dirs:
        try:
            manifest = json.loads((d / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict):
            out.append(BackupSet(d, manifest))
    out.sort(key=lambda b: (str(b.manifest.get("created", "")), b.directory.name))
    return out


def latest_backup(backup_root: Path) -> BackupSet | None:
    """The newest backup set that has not been undone yet."""
    for backup in reversed(list_backups(backup_root)):
        if not backup.manifest.get("undone"):
            return backup
    return None


@dataclass(frozen=True)
class RestorePlan:
    backup: BackupSet
    restores: list[tuple[FileState, bytes | None, int | None]]  # current, bytes to put back
    modified_since: list[Path]


def plan_restore(backup: BackupSet) -> RestorePlan:
    restores: list[tuple[FileState, bytes | None, int | None]] = []
    modified: list[Path] = []
    for entry in backup.files:
        target = Path(str(entry["path"]))
        current = read_state(target)
        raw: bytes | None = None
        if entry.get("backup"):
            try:
                raw = (backup.directory / str(entry["backup"])).read_bytes()
            except OSError as exc:
                raise SetupFileError(
                    f"backup copy {backup.directory / str(entry['backup'])} is unreadable "
                    f"({exc.strerror}); nothing was changed"
                ) from None
        if current.raw is None or sha256(current.raw) != entry.get("written_sha256"):
            modified.append(target)
        mode = entry.get("mode")
        restores.append((current, raw, mode if isinstance(mode, int) else None))
    return RestorePlan(backup, restores, modified)


def restore_backup(plan: RestorePlan) -> None:
    for current, raw, _ in plan.restores:
        if raw is not None or current.existed:
            check_writable(current)
    for current, raw, mode in plan.restores:
        _restore_one(current.target, raw, mode)
    manifest = dict(plan.backup.manifest)
    manifest["undone"] = True
    manifest["undone_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write_manifest(plan.backup.directory, manifest)
