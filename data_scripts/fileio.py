"""Atomic writes of files and folders, and names that stay inside their folder: the one home of both.

It lives in `data_scripts`, the lower layer, so that the data code and the `modeling_tfswa` package
(which re-exports it as `modeling_tfswa.fileio`) share it without the data importing the model.

- Files: [`write_via_temporary`] writes beside the target under a short hidden name and renames it
  onto the target in one step, so readers (and a crash mid-write) never see a half-written file.
- Folders: [`staging_folder`] + [`publish_folder`] fill a hidden sibling folder and swap it in as one
  unit (an atomic exchange where the kernel offers `renameat2(RENAME_EXCHANGE)`, Linux; two renames
  elsewhere), so a folder holds either all its old files or all its new ones.
- Temporary names are short (`.tfswa-tmp-<pid>-<random>`; a 250-character target name still fits the
  file system's 255-byte limit) and carry the writer's process id, so [`clean_stale_temporaries`]
  removes those of writers that died (killed mid-write) and leaves those of running ones alone.
- Modes: everything published gets the mode a plain `open()` / `mkdir()` gives (`0o666` / `0o777`
  minus the umask), also when the writer created it private (`tempfile.mkdtemp` makes `0o700`
  folders, safetensors `0o600` files), so a model or stems written on a shared machine are readable
  by the colleagues the umask lets read them.
- Names: [`safe_name`] turns a name we did not choose (an input file's name) into a plain folder
  name; [`child_path`] joins a name to a folder and refuses any name that would leave it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Prefix of every temporary file and staging folder written here.
TEMPORARY_PREFIX = ".tfswa-tmp-"
_TEMPORARY = re.compile(rf"^{re.escape(TEMPORARY_PREFIX)}(\d+)-[0-9a-f]+")
#: Longest name (in UTF-8 bytes) [`safe_name`] returns; file systems stop at 255.
MAX_NAME_BYTES = 250
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f/\\]")
_UMASK_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------
def plain_name_problem(name: object, max_length: int = 100) -> str | None:
    """Why `name` cannot be used as a file or folder name as it is, or `None` when it can.

    A plain name is a non-empty string without path separators (`/`, `\\`) or control characters,
    other than `.` and `..`, of at most `max_length` characters.
    """
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a non-empty string"
    if name in (".", ".."):
        return f"{name!r} names a folder, not a file"
    if _UNSAFE_CHARACTERS.search(name):
        return f"{name!r} holds a path separator or a control character"
    if len(name) > max_length:
        return f"{name[:20]!r}... is longer than {max_length} characters"
    return None


def safe_name(name: str) -> str:
    """A plain folder name for a name we did not choose (e.g. an input file's name).

    Path separators and control characters become `_`, leading dots become `_` (no hidden folder,
    no `.` / `..`), an empty name becomes `_`, and names are cut to [`MAX_NAME_BYTES`] UTF-8 bytes.
    Ordinary names (`"Artist - Song (live)"`) come back unchanged.
    """
    text = _UNSAFE_CHARACTERS.sub("_", name)
    stripped = text.lstrip(".")
    text = "_" * (len(text) - len(stripped)) + stripped
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        text = encoded[:MAX_NAME_BYTES].decode("utf-8", errors="ignore")
    return text or "_"


def child_path(folder: str | os.PathLike, name: str) -> Path:
    """`folder / name`, refusing (`ValueError`) any `name` that is not a plain name or whose path
    would resolve outside `folder` (an absolute path, `..`, a separator)."""
    problem = plain_name_problem(name, max_length=255)
    if problem is not None:
        raise ValueError(f"unsafe file name: {problem}")
    folder = Path(folder)
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"unsafe file name {name!r}: it leaves {folder}")
    return path


# --------------------------------------------------------------------------------------------------
# Modes and temporaries
# --------------------------------------------------------------------------------------------------
def current_umask() -> int:
    """The process's umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def match_umask(path: str | os.PathLike) -> None:
    """Give `path` (and, for a folder, everything under it) the mode `open()` / `mkdir()` would:
    `0o666` / `0o777` minus the umask (executable files keep their executable bits)."""
    mask = current_umask()
    path = Path(path)
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir():
            mode = 0o777
        else:
            mode = 0o777 if entry.stat().st_mode & 0o100 else 0o666
        os.chmod(entry, mode & ~mask)


def temporary_name() -> str:
    """A short hidden name for a temporary beside a target: `.tfswa-tmp-<pid>-<random>.tmp` (the
    `.tmp` extension keeps writers that name things after the file's stem happy, e.g. TorchScript's
    archive)."""
    return f"{TEMPORARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and staging folders in `folder` left by writers that died
    (their process id no longer runs); returns what was removed. Those of live writers stay."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------
def write_via_temporary(path: str | os.PathLike, write: Callable[[str], T]) -> T:
    """Call `write(temporary_path)` next to `path`, then rename the result to `path`.

    The temporary has a short hidden name ([`temporary_name`], extension `.tmp`: writers that pick
    a format from the extension must be told the format), is created by `write` itself, gets the
    umask's mode ([`match_umask`]) and is removed if `write` fails. Returns what `write` returns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = str(path.with_name(temporary_name()))
    try:
        outcome = write(temporary)
        match_umask(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return outcome


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; returns the path."""
    write_via_temporary(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------------
def staging_folder(parent: str | os.PathLike) -> Path:
    """A new empty hidden folder in `parent` (created), to be filled and then [`publish_folder`]-ed."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / temporary_name()
    staging.mkdir()
    return staging


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step (Linux `renameat2(RENAME_EXCHANGE)`); False where the
    system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0


def publish_folder(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the finished folder `staging` at `final` as one unit, replacing an existing `final`.

    Modes are set to the umask's first ([`match_umask`]). An existing `final` is exchanged with
    `staging` in one step where the system allows (else moved aside, then `staging` renamed), and
    the old content is removed afterwards.
    """
    staging, final = Path(staging), Path(final)
    match_umask(staging)
    if not final.exists():
        os.replace(staging, final)
        return final
    if _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old content
        return final
    old = final.with_name(temporary_name())
    os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


__all__ = [
    "MAX_NAME_BYTES",
    "TEMPORARY_PREFIX",
    "child_path",
    "clean_stale_temporaries",
    "current_umask",
    "match_umask",
    "plain_name_problem",
    "publish_folder",
    "safe_name",
    "staging_folder",
    "temporary_name",
    "write_text_atomic",
    "write_via_temporary",
]
