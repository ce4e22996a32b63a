"""Read what setup edits and what can override it; the only part of planning that does I/O.

The two files setup edits (user settings and the global config, located by
``ccgate.claude_code.files``) are read byte for byte so the edit can keep their formatting;
one that cannot be parsed stops setup before anything is written. The settings files that win
over the user file are only parsed: one that cannot be read becomes a note, because Claude
Code reports it too and setup's own files are still fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccgate.claude_code.files import ClaudeFiles, SettingsFile
from ccgate.setup.files import FileState, read_state
from ccgate.setup.jsonedit import JsonDoc, JsonFileError
from ccgate.setup.model import MISSING, Note, SetupError, SetupOptions

__all__ = ["EditableFile", "OverridingFile", "SetupInputs", "gather"]


@dataclass
class EditableFile:
    state: FileState  # the bytes as read, for the backup and the diff
    doc: JsonDoc  # parsed; an absent file is an empty document


@dataclass(frozen=True)
class OverridingFile:
    """A settings file that wins over the user file."""

    scope: str  # "project settings", "project-local settings", "managed settings"
    path: Path
    data: dict[str, Any]


@dataclass
class SetupInputs:
    files: ClaudeFiles
    user_settings: EditableFile
    global_config: EditableFile
    overriding: list[OverridingFile] = field(default_factory=list)  # lowest precedence first
    notes: list[Note] = field(default_factory=list)  # overriding files that could not be read


def gather(options: SetupOptions) -> SetupInputs:
    """Read every file the plan needs. Raises SetupError for a file setup cannot edit."""
    files = ClaudeFiles.locate(options.env, options.home)
    inputs = SetupInputs(files, _read_editable(files.user_settings), _read_editable(files.global_config))
    env_block = inputs.user_settings.doc.get(("env",), MISSING)
    if env_block is not MISSING and not isinstance(env_block, dict):
        raise SetupError(
            f'{files.user_settings}: "env" is not a JSON object; fix it by hand. Nothing was changed.'
        )
    for settings_file in files.overriding_settings(options.project_dir):
        _read_overriding(settings_file, inputs)
    return inputs


def _read_editable(path: Path) -> EditableFile:
    state = read_state(path)
    if state.raw is None:
        return EditableFile(state, JsonDoc.new())
    try:
        doc = JsonDoc.parse(state.raw, str(path))
    except JsonFileError as exc:
        raise SetupError(f"{exc}; fix or move the file and run again. Nothing was changed.") from None
    return EditableFile(state, doc)


def _read_overriding(settings_file: SettingsFile, inputs: SetupInputs) -> None:
    path = settings_file.path
    try:
        state = read_state(path)
    except Exception as exc:  # an unreadable managed file: report it, do not fail
        inputs.notes.append(Note("warn", f"cannot read {path} ({exc}); overrides not checked"))
        return
    if state.raw is None:
        return
    try:
        data = JsonDoc.parse(state.raw, str(path)).data
    except JsonFileError as exc:
        inputs.notes.append(Note("warn", f"{settings_file.scope} {exc}; Claude Code will report it too"))
        return
    inputs.overriding.append(OverridingFile(settings_file.scope, path, data))
