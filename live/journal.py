"""The live dam's write-ahead journal: the engine's inputs, in SQLite.

What is journaled is exactly what a :class:`~engine.job.JobMachine` is fed (plus the intake
facts it is built from), so recovery is a replay: on start every unfinished job's machine is
rebuilt by feeding it its journaled events at their journaled times (the machine is
deterministic given its inputs and its per-job random source), then the work it was waiting for
is resumed (:mod:`live.recovery`).

Rows (one table, append order = ``seq``):

=============  ==========  ====================================================
kind           job_id      data (msgpack)
=============  ==========  ====================================================
``job``        the job     :class:`Accepted`: customer, key, the payload's JSON
``<Event>``    the job     the engine event (``Submit``, ``PermitGranted``, ...)
``done``       the job     the machine's :class:`~engine.events.JobOutcome`
``secret``     —           :class:`SecretSet` (stored as given, never logged)
``secret_del`` —           :class:`SecretDeleted`
=============  ==========  ====================================================

Durability: SQLite in WAL mode; writes are grouped (*group commit*): while one batch is being
committed by the writer thread, new rows gather and go in the next transaction. A submit is
acknowledged only after :meth:`Journal.durable` returns, i.e. its ``job`` row is committed.
``synchronous=FULL`` (the default) fsyncs each commit, so an acknowledged job survives power
loss; ``synchronous=NORMAL`` survives a process crash (``kill -9``) but may lose the last
commits on power loss, and is faster.

At start, finished jobs keep only their ``job`` and ``done`` rows (enough for dedupe and
``GET /api/v1/jobs/{id}``), and jobs finished longer ago than the dedupe retention are dropped.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import msgspec

from engine import events as ev
from engine.events import JobOutcome

__all__ = ["Accepted", "Journal", "JournalEntry", "JournalError", "SecretDeleted", "SecretSet",
           "SyncMode"]

SyncMode = Literal["full", "normal"]
SCHEMA_VERSION = "1"


class Accepted(msgspec.Struct, frozen=True, gc=False):
    """An accepted job: what its machine is built from."""

    customer_id: str
    key: str
    payload: bytes  # the job's JSON text (a child's: its parent's on_success/on_failure)
    parent: str | None = None
    relation: str | None = None


class SecretSet(msgspec.Struct, frozen=True, gc=False):
    customer_id: str
    primary: str
    secondary: str | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"SecretSet(customer_id={self.customer_id!r}, primary=***, secondary=***)"


class SecretDeleted(msgspec.Struct, frozen=True, gc=False):
    customer_id: str


_EVENT_TYPES: dict[str, type] = {t.__name__: t for t in (
    ev.Submit, ev.PermitGranted, ev.AttemptFinished, ev.TimerFired, ev.WebhookResult,
    ev.Cancel)}
_TYPES: dict[str, type] = {**_EVENT_TYPES, "job": Accepted, "done": JobOutcome,
                           "secret": SecretSet, "secret_del": SecretDeleted}
_KIND_OF: dict[type, str] = {t: k for k, t in _TYPES.items()}
_DECODERS = {k: msgspec.msgpack.Decoder(t) for k, t in _TYPES.items()}
_encode = msgspec.msgpack.Encoder().encode


class JournalEntry(msgspec.Struct, frozen=True, gc=False):
    """One replayed row."""

    kind: str
    job_id: str | None
    at: int
    record: Any  # an engine event, Accepted, JobOutcome, SecretSet or SecretDeleted


class JournalError(RuntimeError):
    """The journal cannot be written: the dam stops acknowledging jobs."""


class Journal:
    """Append-only, group-committed. ``append`` from the event loop; ``durable`` to wait."""

    def __init__(self, data_dir: Path, *, sync: SyncMode = "full",
                 retention_us: int = 24 * 3600 * 1_000_000, seed: int = 0) -> None:
        self.path = Path(data_dir) / "journal.sqlite3"
        self.sync = sync
        self.seed = seed  # after open(): the seed the journal was created with
        self.retention_us = retention_us
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._db: sqlite3.Connection | None = None
        self._buf: list[tuple] = []
        self._appended = 0  # rows appended so far
        self._committed = 0  # rows committed so far
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        self.failure: BaseException | None = None
        self.commits = 0
        self.rows = 0

    # -- start: open, compact, replay (synchronous, before serving) ------------------------------
    def open(self, now: int) -> list[JournalEntry]:
        """Open (creating) the journal, compact it, and return every row to replay in order."""
        return self._pool.submit(self._open, now).result()

    def _open(self, now: int) -> list[JournalEntry]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.sync.upper()}")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, "
                   "kind TEXT NOT NULL, job_id TEXT, at INTEGER NOT NULL, data BLOB NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS journal_job ON journal (job_id)")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise JournalError(f"{self.path}: journal schema {row[0]}, this apidam reads "
                               f"{SCHEMA_VERSION}")
        # Replays must draw the random numbers the first run drew: the seed is the journal's.
        db.execute("INSERT OR IGNORE INTO meta VALUES ('seed', ?)", (str(self.seed),))
        self.seed = int(db.execute("SELECT value FROM meta WHERE key='seed'").fetchone()[0])
        self._db = db
        self._compact(now)
        return list(self._rows())

    def _compact(self, now: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM journal WHERE job_id IN (SELECT job_id FROM journal "
                   "WHERE kind='done' AND at < ?)", (now - self.retention_us,))
        db.execute("DELETE FROM journal WHERE kind NOT IN ('job', 'done') AND job_id IN "
                   "(SELECT job_id FROM journal WHERE kind='done')")
        db.execute("COMMIT")

    def _rows(self) -> Iterator[JournalEntry]:
        for kind, job_id, at, data in self._db.execute(
                "SELECT kind, job_id, at, data FROM journal ORDER BY seq"):
            dec = _DECODERS.get(kind)
            if dec is None:
                raise JournalError(f"{self.path}: unknown journal row kind {kind!r}")
            yield JournalEntry(kind, job_id, at, dec.decode(data))

    # -- appending -------------------------------------------------------------------------------
    def append(self, job_id: str | None, at: int, record: msgspec.Struct) -> None:
        """Queue one row (committed by the next group commit). After a write failure nothing
        more is written: a journal with a hole in it would replay to a wrong state."""
        if self.failure is not None:
            return
        self._buf.append((_KIND_OF[type(record)], job_id, at, _encode(record)))
        self._appended += 1
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def durable(self) -> None:
        """Return once every row appended so far is committed; JournalError if it cannot be."""
        if self.failure is not None:
            raise JournalError(f"journal write failed: {self.failure}")
        target = self._appended
        if self._committed >= target:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._buf:
                batch, self._buf = self._buf, []
                upto = self._appended
                try:
                    await loop.run_in_executor(self._pool, self._write, batch)
                except Exception as e:  # disk full, I/O error: stop acknowledging
                    self.failure = e
                    for _, fut in self._waiters:
                        if not fut.done():
                            fut.set_exception(JournalError(f"journal write failed: {e}"))
                    self._waiters.clear()
                    self._buf.clear()
                    return
                self._committed = upto
                keep = []
                for target, fut in self._waiters:
                    if target <= upto:
                        if not fut.done():
                            fut.set_result(None)
                    else:
                        keep.append((target, fut))
                self._waiters = keep
        finally:
            self._writer = None

    def _write(self, batch: list[tuple]) -> None:
        db = self._db
        db.execute("BEGIN")
        db.executemany("INSERT INTO journal (kind, job_id, at, data) VALUES (?, ?, ?, ?)", batch)
        db.execute("COMMIT")
        self.commits += 1
        self.rows += len(batch)

    async def close(self) -> None:
        """Commit what is queued, then close."""
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._db is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
