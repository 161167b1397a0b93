"""Keep the local stack's data across restarts and crashes, in a state folder (``.agent-runtime/``).

moto keeps everything in memory and has no stable way to save it (pickling its backends
breaks between moto versions), so the state folder holds, in a format of our own that any
future moto can be loaded from:

- a **snapshot**, dumped through the AWS APIs themselves: DynamoDB tables and S3 buckets
  (`snapshot_storage`), EventBridge Scheduler groups and schedules, EventBridge buses and
  rules (`snapshot_events`);
- a **journal** of every state-changing request since that snapshot, each flushed to the disk
  before its answer was returned (`journal`, `journal_wsgi`). So once the local stack has
  answered, a ``kill -9`` loses nothing: a start loads the snapshot and replays the journal;
- at a clean stop only, the messages still waiting in SQS (`snapshot_sqs`), sent again on the
  next start and then let go, so a later crash cannot deliver them twice. SQS is the wake-up,
  not the record: the start-up sweep (`dev.recovery`) wakes every instance with unsettled work.

A snapshot is taken when the journal has grown past a bound (`Autosaver`) and at a clean stop.
It is written into a folder of its own while journaled writes wait (reads go on), and
committed by renaming the manifest, which names it and the journal generation it does not
contain; the journal then starts that generation. A crash before the commit keeps the old
snapshot and the whole journal; after it, the new snapshot and the new generation: a replay
never applies a write the snapshot already holds.

Layout, format ``agent-runtime-local-state`` version 2 (version 1, from before the journal,
is read too; a reader refuses other versions)::

    state.json                       manifest: format, version, saved_at, snapshot,
                                     journal_generation, tables, buckets, scheduler, events,
                                     queues (file paths in it are relative to the folder)
    snapshots/<gen>/dynamodb/<table>.jsonl   one item per line in DynamoDB's wire JSON
    snapshots/<gen>/s3/<bucket>.json         {"objects": {key: {"blob", "etag", "metadata", ...}}}
    snapshots/<gen>/scheduler.json, events.json
    s3/blobs/<sha256>                object bodies, stored once per content
    journal/<gen>.log                the requests since the snapshot
    sqs/<queue>.jsonl                {"body", "group_id", "deduplication_id", "attributes"}
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_runtime.dev.journal import Journal
from agent_runtime.dev.snapshot_events import (
    restore_events,
    restore_schedules,
    save_events,
    save_schedules,
)
from agent_runtime.dev.snapshot_sqs import drain_queues, restore_queue
from agent_runtime.dev.snapshot_storage import (
    bucket_objects,
    restore_bucket,
    restore_table,
    save_buckets,
    save_tables,
    unused_blobs,
)
from agent_runtime.dev.state_files import LocalStateError, fsync_dir, write_atomic

__all__ = ["FORMAT", "VERSION", "Autosaver", "LocalState", "LocalStateError", "RestoreSummary"]

log = logging.getLogger(__name__)

FORMAT = "agent-runtime-local-state"
VERSION = 2
_READABLE = (1, 2)
MANIFEST = "state.json"
JOURNAL = "journal"
SNAPSHOTS = "snapshots"

Clients = Callable[[str], Any]
Pause = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class RestoreSummary:
    items: int = 0
    objects: int = 0
    messages: int = 0
    schedules: int = 0
    replayed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.items} items, {self.objects} objects, {self.messages} messages, "
            f"{self.schedules} schedules, {self.replayed} journaled writes"
        )


@dataclass
class LocalState:
    """The state folder: `restore()` and `replay()` it into a fresh moto, then keep it with
    the journal, `snapshot()` and, at a clean stop, `drain_queues()`."""

    root: Path
    journal: Journal | None = field(default=None, init=False)
    _manifest: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._manifest = self._read_manifest()

    # -- reading ---------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"tables": {}, "buckets": {}, "queues": {}}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LocalStateError(f"cannot read {path}: {exc}", path=path) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise LocalStateError(f"{path} is not an agent-runtime state folder", path=path)
        if manifest.get("version") not in _READABLE:
            raise LocalStateError(
                f"{path} has state format version {manifest.get('version')!r}; this version reads "
                f"{', '.join(map(str, _READABLE))}. Use a matching agent-runtime, or move the "
                "folder away to start empty.",
                path=path,
            )
        for section in ("tables", "buckets", "queues"):
            manifest.setdefault(section, {})
        return manifest

    @property
    def generation(self) -> int:
        """The first journal generation the snapshot does not contain."""
        return int(self._manifest.get("journal_generation", 0))

    def restore(self, client: Clients) -> RestoreSummary:
        """Load the snapshot (and queued messages) into empty services; created if missing."""
        with self._lock:
            manifest, root = self._manifest, self.root
            dynamodb = client("dynamodb")
            items = sum(restore_table(dynamodb, root, n, e) for n, e in manifest["tables"].items())
            s3 = client("s3")
            objects = sum(restore_bucket(s3, root, n, e) for n, e in manifest["buckets"].items())
            sqs = client("sqs")
            messages = sum(restore_queue(sqs, root, n, e) for n, e in manifest["queues"].items())
            schedules = 0
            if manifest.get("scheduler"):
                schedules = restore_schedules(client("scheduler"), root, manifest["scheduler"])
            if manifest.get("events"):
                restore_events(client("events"), root, manifest["events"])
            return RestoreSummary(
                items=items, objects=objects, messages=messages, schedules=schedules
            )

    def replay(self, apply: Callable[[bytes], str]) -> int:
        """Apply the journal after the snapshot, oldest first, then open it for appending."""
        with self._lock:
            journal = Journal(self.root / JOURNAL, generation=self.generation)
            count = 0
            for record in journal.records():
                status = apply(record)
                if not status.startswith(("2", "3")):
                    # It succeeded when it was journaled; a replay that differs is worth a
                    # line, but the writes after it still apply.
                    log.warning("a journaled write answered %r when replayed", status)
                count += 1
            journal.open()
            self.journal = journal
            return count

    def close(self) -> None:
        with self._lock:
            if self.journal is not None:
                self.journal.close()
                self.journal = None

    def forget_queues(self) -> None:
        """Drop the saved messages once they are back in their queues and the stack runs."""
        with self._lock:
            if not self._manifest["queues"]:
                return
            entries = list(self._manifest["queues"].values())
            self._manifest["queues"] = {}
            self._write_manifest()
            for entry in entries:
                (self.root / entry["file"]).unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------------

    def snapshot(self, client: Clients, *, paused: Pause = contextlib.nullcontext) -> None:
        """Dump every service into a new snapshot and commit it; the journal starts over.

        `paused` holds journaled writes off meanwhile (`journal_wsgi.JournalGate.paused`)."""
        with self._lock:
            generation = (self.journal.generation if self.journal else self.generation) + 1
            folder = f"{SNAPSHOTS}/{generation:012d}"
            with paused():
                previous = {
                    name: bucket_objects(self.root, entry)
                    for name, entry in self._manifest["buckets"].items()
                }
                manifest = {
                    **self._manifest,
                    "snapshot": folder,
                    "journal_generation": generation,
                    "tables": save_tables(client("dynamodb"), self.root, folder),
                    "buckets": save_buckets(client("s3"), self.root, folder, previous),
                    "scheduler": save_schedules(client("scheduler"), self.root, folder),
                    "events": save_events(client("events"), self.root, folder),
                }
                self._manifest = manifest
                self._write_manifest()  # the commit
                if self.journal is not None:
                    self.journal.rotate(generation)
            self._clean_up(folder, generation)

    def _clean_up(self, folder: str, generation: int) -> None:
        """Remove what the committed snapshot made obsolete (a crash may leave it: harmless)."""
        if self.journal is not None:
            self.journal.drop_before(generation)
        else:
            Journal(self.root / JOURNAL, generation=generation).drop_before(generation)
        snapshots = self.root / SNAPSHOTS
        for old in snapshots.iterdir() if snapshots.is_dir() else ():
            if old.name != folder.rsplit("/", 1)[-1]:
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.root / "dynamodb", ignore_errors=True)  # version 1's places
        for index in (self.root / "s3").glob("*.json"):
            index.unlink(missing_ok=True)
        for blob in unused_blobs(self.root, self._manifest["buckets"]):
            blob.unlink(missing_ok=True)
        fsync_dir(self.root)

    def drain_queues(self, sqs: Any) -> int:
        """Move every waiting message into the folder. Destructive: only when stopping."""
        with self._lock:
            queues = drain_queues(sqs, self.root)
            self._manifest["queues"] = queues
            self._write_manifest()
            return sum(entry["messages"] for entry in queues.values())

    def _write_manifest(self) -> None:
        self._manifest.update(
            format=FORMAT, version=VERSION, saved_at=datetime.now(UTC).isoformat()
        )
        self._manifest.setdefault("journal_generation", self.generation)
        write_atomic(
            self.root / MANIFEST, json.dumps(self._manifest, indent=2, sort_keys=True).encode()
        )


class Autosaver:
    """Takes a snapshot every `interval` seconds when the journal has grown past
    `journal_bytes`, so a start replays little. Durability does not wait for it: the
    journal has every write already."""

    def __init__(
        self,
        state: LocalState,
        *,
        client: Clients,
        paused: Pause,
        interval: float = 2.0,
        journal_bytes: int = 8 << 20,
    ) -> None:
        self.state = state
        self.interval = interval
        self.journal_bytes = journal_bytes
        self._client = client
        self._paused = paused
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.saves = 0

    def save_if_due(self) -> bool:
        journal = self.state.journal
        if journal is None or journal.bytes < self.journal_bytes:
            return False
        self.state.snapshot(self._client, paused=self._paused)
        self.saves += 1
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="local-state-autosave", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save_if_due()
            except Exception:
                log.warning("saving the local state failed; will retry", exc_info=True)
