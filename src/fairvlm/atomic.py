"""Atomic outputs, and the rules for replacing them.

Every output is built under a temporary name beside its destination and renamed into
place, so an interrupted write never leaves a half-written output that looks complete.
A folder is replaced only when fairvlm wrote it and it holds the same kind of output
(its marker file), or when it is empty; anything else needs ``overwrite`` (``--overwrite``).
Every name that becomes a path component goes through :func:`check_name`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fairvlm.errors import ConfigError, DataError

#: The marker of the outputs that have no file of their own to identify them.
OUTPUT_MARKER = "fairvlm_output.json"
#: The exclusive lock of an output folder that a run fills in place (pid and host).
LOCK_FILE = ".fairvlm.lock"


def check_name(value: object, name: str) -> str:
    """``value`` as a single, plain path component, or a :class:`ConfigError`.

    No separators, no ``..``, no leading dot (hidden, or a relative path), no empty name.
    """
    text = str(value) if value is not None else ""
    bad = (
        not text.strip()
        or text.startswith(".")
        or any(sep in text for sep in ("/", "\\", os.sep))
        or "\0" in text
    )
    if bad:
        raise ConfigError(
            f"{name}={value!r} is not valid: it becomes a folder name; use letters, digits, "
            "- and _ (no path separators, no leading dot, not empty)"
        )
    return text


def check_replaceable(out: Path, marker: str, overwrite: bool = False) -> None:
    """Raise unless ``out`` is absent, an empty folder or a folder holding ``marker``
    (or ``overwrite`` is given)."""
    if not out.exists() or overwrite:
        return
    if out.is_dir() and ((out / marker).is_file() or not any(out.iterdir())):
        return
    raise DataError(
        f"out={str(out)!r} exists and is not a fairvlm output of this kind (no {marker}); "
        "choose another output path or remove it first"
    )


def output_kind(out: Path) -> str | None:
    """The kind recorded in ``out``'s :data:`OUTPUT_MARKER`, ``None`` when there is none."""
    try:
        return json.loads((out / OUTPUT_MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_output_dir(
    out: Path, kind: str, overwrite: bool = False, flag: str | None = "--overwrite"
) -> None:
    """Raise unless ``out`` may receive an output of ``kind`` in place (a resumable
    folder): absent, empty, or marked as ``kind`` by fairvlm (or ``overwrite``). ``flag``:
    the command's option that allows it anyway, named in the error (``None``: none)."""
    if not out.exists() or overwrite:
        return
    empty = out.is_dir() and not any(p.name != LOCK_FILE for p in out.iterdir())
    if out.is_dir() and (output_kind(out) == kind or empty):
        return
    found = output_kind(out) if out.is_dir() else None
    what = f"a fairvlm {found} folder" if found else "not a fairvlm output folder"
    anyway = f", or pass {flag} to write there anyway" if flag else ""
    raise DataError(
        f"out={str(out)!r} exists and is {what}, not a fairvlm {kind} folder; choose another "
        f"output path{anyway}"
    )


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unreadable: assume a live holder rather than steal its folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def output_lock(out: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of output folder ``out`` (:data:`LOCK_FILE`) for the block.

    A second run into the same folder is refused with the holder's pid and host. A lock
    left by a dead process of this host is taken over, with a message on stderr.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and not _pid_alive(holder.get("pid")):
                print(
                    f"fairvlm: taking over the lock {path} of pid {holder['pid']}, which is "
                    "no longer running",
                    file=sys.stderr,
                )
                path.unlink(missing_ok=True)
                continue
            raise ConfigError(
                f"out={str(out)!r} is in use by pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} (lock {path}): wait for that run to end or choose "
                "another output folder; if that process is gone, delete the lock file"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()) == me:
                path.unlink()
        except (OSError, ValueError):
            pass


def write_marker(out: Path, kind: str) -> None:
    """Mark ``out`` as a fairvlm output of ``kind`` (atomically)."""
    atomic_write_text(out / OUTPUT_MARKER, json.dumps({"kind": kind}) + "\n")


def describe_write_error(exc: OSError) -> str:
    """One line for an ``OSError`` of writing: the path, the reason and the fix."""
    where = exc.filename or "the output"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space there or choose an output on another disk"
    else:
        fix = "choose a writable output path (--out) or fix its permissions"
    return f"cannot write {str(where)!r}: {exc.strerror or exc}; {fix}"


def check_writable(out: str | Path, name: str = "out") -> None:
    """Fail before any work when the folder that will receive ``out`` is not writable."""
    out = Path(out)
    parent = out if out.is_dir() else out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".fairvlm-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{name}={str(out)!r}: {describe_write_error(exc)}") from None


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it when the block succeeds
    (removed when it raises): for writers that take a path, such as safetensors'."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_dir(out: str | Path, marker: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``out`` when the block succeeds.

    ``marker`` is the file that identifies a complete output of this kind: an existing
    ``out`` is replaced only when it holds it (or is empty, or ``overwrite``), so a
    user's unrelated folder is never deleted. The caller writes ``marker`` last.
    """
    out = Path(out)
    check_replaceable(out, marker, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        check_replaceable(out, marker, overwrite)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "LOCK_FILE",
    "OUTPUT_MARKER",
    "atomic_dir",
    "atomic_file",
    "atomic_write_text",
    "check_name",
    "check_output_dir",
    "check_replaceable",
    "check_writable",
    "describe_write_error",
    "output_kind",
    "output_lock",
    "write_marker",
]
