"""The folder side of the manifests source: list, read and parse what changed.

Everything here runs in a worker thread, never on the reactor: `scan` lists
the folder, reads and parses only the files whose status changed, merges
every file and returns the difference from what the Store holds. It reads
the source's previous state without changing it; the reactor thread swaps
the result in.

Only regular files are read. A named pipe, a socket or a device is skipped
with a warning (opening a pipe would block until someone writes to it); a
symbolic link loop, a file that cannot be opened and a sub-folder that
cannot be listed are each one skipped entry: the rest of the folder goes on
being read, and the objects an unreadable file or sub-folder held keep
serving. A file over `max_file_size` is not read at all.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import Mapping

import attrs

from ..config import ManifestLimits, SourceConfig
from ..store import CacheObject
from .merge import Merged, merge
from .parse import Key, ParsedFile, parse_manifest, unreadable

__all__ = [
    "SKIP_REASONS",
    "Listing", "Skip", "Seen", "Scan", "list_folder", "read_regular_file", "scan", "SUFFIXES", "RACY_SECONDS"]

SUFFIXES = (".yaml", ".yml", ".json")
#: A file modified this recently before it was read may change again within
#: the same file-system timestamp tick without its status showing it (git's
#: "racy clean" problem), so it is read again on every poll until it is older.
RACY_SECONDS = 2.0
#: Namespaces before what lives in them, Services before their slices.
KIND_ORDER = {kind: i for i, kind in enumerate(("Namespace", "Service", "EndpointSlice", "Pod"))}

#: Why an entry of the folder is not read (the skipped-entries metric's labels).
SKIP_REASONS = ("not_regular", "unreadable", "too_large", "too_many_objects", "alias_expansion", "invalid")

_FILE_TYPES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@attrs.frozen
class Skip:
    """A folder entry that is not read, and why (`reason` is the metric's label)."""

    path: str
    #: not_regular, unreadable, too_large (the folder's and the reader's), or
    #: invalid, too_many_objects, alias_expansion (the parser's).
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@attrs.frozen
class Listing:
    """The manifest files under a folder, and the entries that could not be listed or are not files."""

    files: Mapping[str, os.stat_result]
    skipped: tuple[Skip, ...] = ()
    #: Sub-folders that could not be listed: what they held before is kept.
    unlisted: tuple[str, ...] = ()


def _kind_of(mode: int) -> str | None:
    for test, name in _FILE_TYPES:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def list_folder(folder: str) -> Listing:
    """The manifest files under `folder`, with their status. Raises OSError for `folder` itself only."""
    unlisted: list[str] = []

    def unreadable_folder(error: OSError) -> None:
        if error.filename == folder or os.path.normpath(error.filename or "") == os.path.normpath(folder):
            raise error
        unlisted.append(error.filename)

    files: dict[str, os.stat_result] = {}
    skipped: list[Skip] = []
    for root, dirs, names in os.walk(folder, onerror=unreadable_folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            path = os.path.join(root, name)
            try:
                status = os.stat(path)
            except FileNotFoundError:
                # A dangling symbolic link, or a file deleted meanwhile.
                continue
            except OSError as error:
                what = "a symbolic link loop" if error.errno == errno.ELOOP else f"cannot read: {error.strerror}"
                skipped.append(Skip(path, "unreadable", f"{what}; skipped"))
                continue
            kind = _kind_of(status.st_mode)
            if kind is not None:
                skipped.append(Skip(path, "not_regular", f"{kind}, not a regular file; skipped"))
                continue
            files[path] = status
    skipped.extend(Skip(path, "unreadable", "cannot list this folder; what it held keeps serving") for path in unlisted)
    return Listing(files, tuple(skipped), tuple(unlisted))


class FileSkipped(Exception):
    def __init__(self, skip: Skip):
        super().__init__(str(skip))
        self.skip = skip


def read_regular_file(path: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; raises FileSkipped or OSError.

    Opened without blocking and checked after opening, so a file swapped for
    a pipe between the listing and the read cannot stall the reader.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        kind = _kind_of(status.st_mode)
        if kind is not None:
            raise FileSkipped(Skip(path, "not_regular", f"{kind}, not a regular file; skipped"))
        too_large = Skip(
            path, "too_large", f"larger than {max_bytes} bytes (max_file_size); skipped, nothing of it is read"
        )
        if status.st_size > max_bytes:
            raise FileSkipped(too_large)
        chunks = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            # It grew since fstat.
            raise FileSkipped(too_large)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _signature(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


@attrs.frozen
class Seen:
    """A file as last read."""

    signature: tuple[int, int, int, int]
    digest: bytes
    #: Read long enough after its last modification for the signature to tell any later change.
    settled: bool
    parsed: ParsedFile


@attrs.frozen
class Scan:
    """One pass over the folder: the new state, and what to write to the Store."""

    seen: Mapping[str, Seen]
    #: Files parsed in this pass, for their problems to be logged.
    parsed: tuple[ParsedFile, ...] = ()
    #: Entries not read, by path, as of this pass.
    skipped: Mapping[str, Skip] = attrs.field(factory=dict)
    #: Files listed, read or removed with a different content than before.
    changed: int = 0
    #: The merge, when anything changed; None when the Store is already right.
    merged: Merged | None = None
    puts: tuple[tuple[Key, CacheObject], ...] = ()
    deletes: tuple[Key, ...] = ()
    #: Why the folder itself could not be listed (nothing else is then set).
    folder_error: str | None = None


def _read(path: str, status: os.stat_result, seen: Seen | None, limits: ManifestLimits, now: float) -> tuple[Seen, bool, Skip | None]:
    """The file's new Seen, whether its content changed, and why it was skipped."""
    signature = _signature(status)
    settled = now - status.st_mtime >= RACY_SECONDS
    previous = seen.parsed if seen is not None else None
    try:
        data = read_regular_file(path, limits.max_file_bytes)
    except FileSkipped as skipped:
        parsed = unreadable(path, 0, skipped.skip.message, previous, skipped.skip.reason)
        # Read again only once its status changes.
        return Seen(signature, b"", True, parsed), True, skipped.skip
    except OSError as error:
        parsed = unreadable(path, 0, f"cannot read: {error.strerror or error}", previous, "unreadable")
        return Seen(signature, b"", True, parsed), True, Skip(path, "unreadable", parsed.errors[0].message)
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if seen is not None and seen.digest == digest:
        return attrs.evolve(seen, signature=signature, settled=settled), False, None
    parsed = parse_manifest(path, data, previous, limits)
    return Seen(signature, digest, settled, parsed), True, None


def diff(applied: Mapping[Key, CacheObject], desired: Mapping[Key, CacheObject]) -> tuple[tuple, tuple]:
    """The writes that turn `applied` into `desired`, in the order the Store should see them."""
    puts = [(key, obj) for key, obj in desired.items() if applied.get(key) != obj]
    deletes = [key for key in applied if key not in desired]
    puts.sort(key=lambda put: KIND_ORDER[put[0][0]])
    deletes.sort(key=lambda key: -KIND_ORDER[key[0]])
    return tuple(puts), tuple(deletes)


def scan(
    folder: str,
    config: SourceConfig,
    seen: Mapping[str, Seen],
    previous: Merged,
    applied: Mapping[Key, CacheObject],
    now: float,
    force: bool = False,
) -> Scan:
    """One pass: list, read what changed, merge and diff against `applied` (read, never changed).

    `force` merges even when no file changed (the first pass, or one after
    a pass whose writes did not all reach the Store).
    """
    limits = config.manifest_limits
    try:
        listing = list_folder(folder)
    except OSError as error:
        return Scan(seen, folder_error=f"{error.strerror or error}: {error.filename or folder}")
    skipped = {skip.path: skip for skip in listing.skipped}
    current: dict[str, Seen] = {}
    parsed: list[ParsedFile] = []
    changed = 0
    for path, old in seen.items():
        if path in listing.files:
            continue
        kept_by = path in skipped or any(path.startswith(d.rstrip(os.sep) + os.sep) for d in listing.unlisted)
        if kept_by:
            # Cannot be read now: what it held keeps serving.
            if old.parsed.readable and path in skipped:
                old = attrs.evolve(
                    old, parsed=unreadable(path, 0, skipped[path].message, old.parsed, skipped[path].reason)
                )
                changed += 1
            current[path] = old
        else:
            changed += 1
    for path, status in listing.files.items():
        old = seen.get(path)
        if old is not None and old.settled and old.signature == _signature(status):
            current[path] = old
            continue
        new, content_changed, skip = _read(path, status, old, limits, now)
        current[path] = new
        if skip is not None:
            skipped[path] = skip
        if content_changed:
            changed += 1
            if skip is None:
                parsed.append(new.parsed)
    for path, entry in current.items():
        if not entry.parsed.readable and path not in skipped:
            skipped[path] = Skip(path, entry.parsed.reason or "invalid", entry.parsed.errors[0].message)
    if not changed and not force:
        return Scan(current, tuple(parsed), skipped)
    merged = merge((entry.parsed for entry in current.values()), config, previous.allocated)
    puts, deletes = diff(applied, merged.objects)
    return Scan(current, tuple(parsed), skipped, changed, merged, puts, deletes)
