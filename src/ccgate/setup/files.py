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

Undo (``plan_restore``, ``restore_backup``): a file nobody changed since setup wrote it gets
its old bytes back (or, if setup created it, is deleted). A file changed since (Claude Code
rewrites ``~/.claude.json`` on every start) keeps everything except the keys setup changed,
which the manifest records per JSON file (``changes``): each goes back to its old value, or
away if setup added it. Such a file is never deleted. A key whose value changed again since
setup wrote it is a conflict: left alone unless forced.
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

from ccgate.setup.jsonedit import JsonDoc, JsonFileError

__all__ = [
    "BackupSet",
    "FileRestore",
    "FileState",
    "RestorePlan",
    "SetupFileError",
    "apply_writes",
    "atomic_write",
    "backup_root",
    "key_changes",
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
            if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
                os.fchmod(fh.fileno(), mode)
            else:
                os.chmod(tmp, mode)  # Windows keeps only the read-only bit; the mode has owner-write
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


_ABSENT: Any = object()  # a key that is not there (before or after a change)


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    """A JSON object file's content; {} for a missing or empty file; None if not a JSON object."""
    if raw is None:
        return {}
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``True`` is not ``1``)."""
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def key_changes(old: dict[str, Any], new: dict[str, Any], path: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every key whose value differs, as manifest entries ``{"path", "before"?, "after"?}``
    (a missing side: the key was absent). An object created whole is recorded as its members
    plus ``{"path", "created": true}``, so undo can remove it once it is empty again."""
    out: list[dict[str, Any]] = []
    for key in [*old, *(k for k in new if k not in old)]:
        where = [*path, key]
        before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if _same(before, after):
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            out.extend(key_changes(before, after, tuple(where)))
        elif before is _ABSENT and isinstance(after, dict) and after:
            out.append({"path": where, "created": True})
            out.extend(key_changes({}, after, tuple(where)))
        else:
            entry: dict[str, Any] = {"path": where}
            if before is not _ABSENT:
                entry["before"] = before
            if after is not _ABSENT:
                entry["after"] = after
            out.append(entry)
    return out


def _recorded_changes(old: bytes | None, new: bytes) -> list[dict[str, Any]] | None:
    before, after = _json_object(old), _json_object(new)
    if before is None or after is None:
        return None  # not JSON (the ccgate YAML config): undo restores the whole file
    return key_changes(before, after)


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
            "changes": _recorded_changes(state.raw, data),
        }
        if state.raw is not None:
            name = f"{i}-{state.target.name}"
            atomic_write(directory / name, state.raw, 0o600, None)
            entry["backup"] = name
        entries.append(entry)
    manifest: dict[str, Any] = {
        "version": 2,
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
class FileRestore:
    """What undo does to one file: ``new`` bytes (None: delete it; ``current.raw``: leave it)."""

    current: FileState
    new: bytes | None
    mode: int | None
    how: str
    conflicts: tuple[str, ...] = ()  # keys changed again since setup wrote them (dotted)

    @property
    def changes_file(self) -> bool:
        return self.new != self.current.raw


@dataclass(frozen=True)
class RestorePlan:
    backup: BackupSet
    files: list[FileRestore]

    @property
    def conflicts(self) -> list[str]:
        return [f"{f.current.path}: {key}" for f in self.files for key in f.conflicts]


def plan_restore(backup: BackupSet, *, force: bool = False) -> RestorePlan:
    """What undoing ``backup`` would do; ``force`` also reverts keys changed again since."""
    return RestorePlan(backup, [_plan_file(backup, entry, force) for entry in backup.files])


def _plan_file(backup: BackupSet, entry: dict[str, Any], force: bool) -> FileRestore:
    target = Path(str(entry["path"]))
    current = read_state(target)
    mode = entry.get("mode") if isinstance(entry.get("mode"), int) else None
    old: bytes | None = None
    if entry.get("backup"):
        try:
            old = (backup.directory / str(entry["backup"])).read_bytes()
        except OSError as exc:
            raise SetupFileError(
                f"backup copy {backup.directory / str(entry['backup'])} is unreadable "
                f"({exc.strerror}); nothing was changed"
            ) from None
    if current.raw is not None and sha256(current.raw) == entry.get("written_sha256"):
        if old is None:
            return FileRestore(current, None, mode, "delete (setup created it, nothing changed it since)")
        return FileRestore(current, old, mode, "restore the backup (unchanged since setup)")
    if current.raw is None:
        return FileRestore(current, None, mode, "nothing to revert (the file is gone)")
    changes = entry.get("changes")
    if not isinstance(changes, list):  # a backup from before keys were recorded, or not JSON
        if not force:
            return FileRestore(current, current.raw, mode, "changed since setup wrote it", ("(whole file)",))
        if old is None:  # never delete a file someone else has written since
            return FileRestore(current, current.raw, mode, "left as it is (written by another program since)")
        return FileRestore(current, old, mode, "restore the backup (changes since are discarded)")
    return _revert_keys(current, mode, changes, force)


def _revert_keys(
    current: FileState, mode: int | None, changes: list[dict[str, Any]], force: bool
) -> FileRestore:
    assert current.raw is not None
    try:
        doc = JsonDoc.parse(current.raw, str(current.path))
    except JsonFileError as exc:
        raise SetupFileError(f"{exc}; cannot undo setup's keys in it. Nothing was changed.") from None
    conflicts: list[str] = []
    reverted = 0
    for change in (c for c in changes if not c.get("created")):
        path = tuple(str(k) for k in change["path"])
        now = doc.get(path, _ABSENT)
        if not _same(now, change.get("after", _ABSENT)) and not force:
            conflicts.append(".".join(path))
            continue
        if "before" in change:
            doc.set(path, change["before"])
        else:
            doc.remove(path)
        reverted += 1
    for change in reversed([c for c in changes if c.get("created")]):
        path = tuple(str(k) for k in change["path"])
        if doc.get(path, _ABSENT) == {}:
            doc.remove(path)
    how = f"revert {reverted} key(s) setup changed; the rest of the file (changed since) is kept"
    new = doc.encoded() if reverted else current.raw
    return FileRestore(current, new, current.mode if current.mode is not None else mode, how, tuple(conflicts))


def restore_backup(plan: RestorePlan) -> None:
    """Carry out ``plan``; the state each file was in before goes into the backup set as
    ``undo-*``, so the undo can itself be reversed by hand."""
    todo = [f for f in plan.files if f.changes_file]
    for f in todo:
        check_writable(f.current)
    for i, f in enumerate(todo):
        if f.current.raw is not None:
            saved = plan.backup.directory / f"undo-{i}-{f.current.target.name}"
            atomic_write(saved, f.current.raw, 0o600, None)
    for f in todo:
        _restore_one(f.current.target, f.new, f.mode)
    manifest = dict(plan.backup.manifest)
    manifest["undone"] = True
    manifest["undone_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write_manifest(plan.backup.directory, manifest)
