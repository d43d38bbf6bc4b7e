"""A writer's lock on a store: the object `<store>.lock`, created atomically next to it.

The lock lies beside the store, not inside, because creating a store clears its folder.
Creation is exclusive on every backend the stores use: O_CREAT|O_EXCL on local disk, a PUT
with `If-None-Match: *` on S3 (s3fs `mode="create"`), and memory://, so two writers can
never both hold it. It holds JSON {pid, host, time, token}.

A second writer fails at once with `StoreLocked` rather than waiting: ingests are re-run by
their schedule and the flow's retries, and waiting would hide a stuck writer. A lock is
stale, and is broken with a warning, when its PID is not running on this host, or when it
is older than `stale_after` seconds ($SSTCAST_LOCK_STALE_AFTER, default 6 hours; a writer
on another host that died can only be told apart by age).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime

import fsspec
from fsspec.implementations.local import LocalFileSystem

__all__ = ["StoreLocked", "lock_path", "store_lock"]

STALE_AFTER = 6 * 3600.0


class StoreLocked(OSError):
    """Another writer holds the store's lock."""


def lock_path(url) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of the lock of the store at `url` ("." names its folder)."""
    fs, path = fsspec.core.url_to_fs(str(url))
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, path.rstrip("/") + ".lock"


def _create(fs, path: str, data: bytes) -> None:
    """Create `path` holding `data`, or raise FileExistsError: atomically."""
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    else:
        fs.pipe_file(path, data, mode="create")


def _holder(fs, path: str) -> dict | None:
    """The lock's content; None when it is gone. A lock being written (or left empty by a
    crash right after its creation) is dated by its file's time, so it too goes stale."""
    try:
        fs.invalidate_cache(path)
        return json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None
    except ValueError:
        try:
            return {"time": fs.modified(path).astimezone(UTC).isoformat(timespec="seconds")}
        except (OSError, NotImplementedError):
            return {}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stale(holder: dict, stale_after: float) -> str | None:
    """Why the lock `holder` is stale, or None while its writer may still be working."""
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if not _running(holder["pid"]):
            return f"PID {holder['pid']} is not running on this host"
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(holder["time"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None
    if age > stale_after:
        return f"it is {age:.0f} s old, more than stale_after={stale_after:g} s"
    return None


def _describe(holder: dict) -> str:
    return (
        f"PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
        f"since {holder.get('time', '?')}"
    )


@contextmanager
def store_lock(url, *, stale_after: float | None = None):
    """Hold the write lock of the store at `url` while inside; raise StoreLocked when another
    live writer holds it. stale_after: seconds after which any lock counts as stale."""
    if stale_after is None:
        stale_after = float(os.environ.get("SSTCAST_LOCK_STALE_AFTER", STALE_AFTER))
    fs, path = lock_path(url)
    token = uuid.uuid4().hex
    mine = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "token": token,
    }
    for attempt in range(3):
        try:
            _create(fs, path, json.dumps(mine).encode())
            break
        except FileExistsError:
            holder = _holder(fs, path)
            if holder is None:  # released in between: try again
                continue
            reason = _stale(holder, stale_after)
            if reason is None or attempt == 2:
                raise StoreLocked(
                    f"store: {str(url)!r} is being written by {_describe(holder)} "
                    f"(lock {path}); expected no other writer. Wait for it to finish, or "
                    "delete the lock if that writer is gone"
                ) from None
            warnings.warn(
                f"store: breaking the stale lock {path} of {_describe(holder)}: {reason}",
                stacklevel=3,
            )
            if _holder(fs, path) == holder:  # not broken and retaken by another writer
                fs.rm_file(path)
    else:
        raise StoreLocked(f"store: could not take the lock {path} of {str(url)!r}")
    try:
        yield
    finally:
        if (_holder(fs, path) or {}).get("token") == token:
            fs.rm_file(path)
