"""The local stack's write-ahead journal: every acknowledged write, on disk before its answer.

A snapshot (`persistence.LocalState`) alone loses what happened since it was taken; so each
request that changes durable state is appended here, in the order moto applied it, and
flushed to the disk (``fdatasync``) before moto's answer leaves the server. On start the last
snapshot is loaded and the journal replayed over it.

Files: ``journal/<generation>.log``, twelve digits. A snapshot names the generation it does
not contain; its commit (the manifest renamed into place) and the switch to a new segment
happen under the same pause of writes, so a replay starts exactly where the snapshot ends:
nothing is applied twice and nothing is skipped, whatever instant a crash picks. Segments
older than the snapshot's are deleted after the commit (a crash before that leaves them to
be ignored and deleted on the next start).

A record is ``b"ARJ1"``, the payload's length and its CRC-32 (little-endian 32-bit each),
then the payload. A crash can tear only what was not flushed yet, which no client was told
about: reading stops at the first record that is incomplete or fails its checksum, and that
tail is cut off before new records are appended. A bad record in an older segment (never
the one being appended to) is damage, and refused loudly.

Group commit: a request appends under the apply lock (`journal_wsgi`), then waits for its
record to be flushed without holding it; one waiter flushes for every record appended so
far while the others wait, so concurrent writers share a flush instead of queueing for one
each.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from agent_runtime.dev.state_files import LocalStateError, fsync_dir

__all__ = ["Journal", "read_segment"]

log = logging.getLogger(__name__)

MAGIC = b"ARJ1"
_HEADER = struct.Struct("<4sII")
_MAX_RECORD = 1 << 30
_SEGMENT = re.compile(r"(\d{12})\.log")


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_segment(path: Path) -> tuple[list[bytes], int]:
    """The whole records of one segment, and the offset where they end (a torn tail after)."""
    data = path.read_bytes()
    records: list[bytes] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if magic != MAGIC or length > _MAX_RECORD or start + length > len(data):
            break
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        offset = start + length
    return records, offset


class Journal:
    """The journal in `folder`, from segment `generation` on (older ones are in a snapshot)."""

    def __init__(self, folder: Path, *, generation: int) -> None:
        self.folder = Path(folder)
        self.generation = generation
        self._cond = threading.Condition()
        self._fd: int | None = None
        self._segment = generation
        self._appended = 0  # records appended by this process
        self._durable = 0  # of them, flushed
        self._syncing = False
        self.bytes = 0  # in the segments a replay would read

    def segments(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            if match := _SEGMENT.fullmatch(path.name):
                found.append((int(match.group(1)), path))
        return sorted(found)

    def records(self) -> Iterator[bytes]:
        """Every record a replay applies, oldest first; cuts a torn tail off the last segment."""
        live = [(n, p) for n, p in self.segments() if n >= self.generation]
        for index, (number, path) in enumerate(live):
            records, end = read_segment(path)
            size = path.stat().st_size
            if end < size:
                if index < len(live) - 1:
                    raise LocalStateError(
                        f"{path} is damaged at byte {end} and is not the last journal segment",
                        path=path,
                    )
                log.warning("%s: ignoring %d bytes of a write cut off by a crash", path, size - end)
                with path.open("r+b") as file:
                    file.truncate(end)
                    os.fsync(file.fileno())
            self.bytes += end
            self._segment = number
            yield from records

    def open(self) -> None:
        """Append from now on (after `records()` was read: to the last segment)."""
        with self._cond:
            self._open_segment(max(self._segment, self.generation))

    def _open_segment(self, number: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{number:012d}.log"
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment = number
        if created:
            fsync_dir(self.folder)

    def append(self, payload: bytes) -> int:
        """Write one record (not yet flushed); its number for `wait_durable`."""
        record = frame(payload)
        with self._cond:
            if self._fd is None:
                raise RuntimeError("the journal is not open")
            written = os.write(self._fd, record)
            if written != len(record):  # a regular file writes all or raises
                raise OSError(f"short journal write: {written} of {len(record)} bytes")
            self.bytes += len(record)
            self._appended += 1
            return self._appended

    @property
    def appended(self) -> int:
        with self._cond:
            return self._appended

    def wait_durable(self, number: int) -> None:
        """Return once record `number` (and every one before it) is on the disk."""
        with self._cond:
            while self._durable < number:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target, fd = self._appended, self._fd
                self._cond.release()
                try:
                    if fd is not None:
                        os.fdatasync(fd)
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                self._durable = max(self._durable, target)

    def rotate(self, generation: int) -> None:
        """Start segment `generation` (the caller holds writes off, see `journal_wsgi`)."""
        with self._cond:
            self._flush_and_close()
            self.generation = generation
            self.bytes = 0
            self._open_segment(generation)

    def drop_before(self, generation: int) -> None:
        """Delete the segments a committed snapshot contains."""
        dropped = False
        for number, path in self.segments():
            if number < generation:
                path.unlink(missing_ok=True)
                dropped = True
        if dropped:
            fsync_dir(self.folder)

    def close(self) -> None:
        with self._cond:
            self._flush_and_close()

    def _flush_and_close(self) -> None:
        """With the condition held: once no flush runs, flush and close the segment."""
        while self._syncing:
            self._cond.wait()
        if self._fd is not None:
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = None
        self._durable = self._appended
