"""A local, append-only, fsync'd spool of records Kafka could not take in time.

Layout of ``INGRESS_SPOOL_DIR``::

    00000000000000000001.jsonl   segments: one JSON object per line, oldest first
    00000000000000000002.jsonl   (the newest is the one appended to)
    position.json                how far replay got: {"segment": 1, "offset": 8123}
    rejected.jsonl               records Kafka refused for good (e.g. too large), kept

A record line is ``{"topic", "key", "headers", "value" | "value_b64"}`` followed by
``\\n``. :meth:`Spool.append` writes lines and fsyncs before returning, which is what lets
the ingress answer 200. A crash mid-write leaves at most a partial last line, never
acknowledged; :meth:`Spool.open` cuts it off. ``position.json`` is written (not fsync'd)
after each replayed batch: losing it only replays records again, with the same
``event_id``. A segment is closed once it passes ``segment_bytes`` and deleted as soon as
replay has gone past it; when replay catches up completely, the active segment is deleted
too, so an idle spool holds no data.

Everything here is synchronous and thread-safe (one lock); the async side runs it in a
worker thread (``asyncio.to_thread``) so fsync never blocks the event loop.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import structlog

log = structlog.get_logger(__name__)

SEGMENT_SUFFIX = ".jsonl"
POSITION_FILE = "position.json"
REJECTED_FILE = "rejected.jsonl"
#: A record's framing in a batch plus the ``correlation_id`` header the producer adds.
RECORD_OVERHEAD_BYTES = 128


class CorruptRecord(ValueError):
    """A spool line that cannot be read back (only possible through outside damage)."""


@dataclass(frozen=True)
class SpoolRecord:
    """One Kafka record, as it will be published."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """About what the record takes in a record batch (value, key, headers, framing)."""
        headers = sum(len(name) + len(value) for name, value in self.headers.items())
        return len(self.value) + len(self.key or b"") + headers + RECORD_OVERHEAD_BYTES

    def to_line(self) -> bytes:
        body: dict[str, Any] = {
            "topic": self.topic,
            "key": self.key.decode("utf-8", errors="surrogateescape") if self.key else None,
            "headers": self.headers,
        }
        try:
            body["value"] = self.value.decode("utf-8")
        except UnicodeDecodeError:
            body["value_b64"] = base64.b64encode(self.value).decode("ascii")
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
        return text.encode("ascii") + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpoolRecord:
        try:
            body = json.loads(line)
            topic = body["topic"]
            key = body["key"]
            headers = body["headers"]
            if "value_b64" in body:
                value = base64.b64decode(body["value_b64"], validate=True)
            else:
                value = body["value"].encode("utf-8")
            if not isinstance(topic, str) or not isinstance(headers, dict):
                raise CorruptRecord("unreadable spool line: topic or headers")
            return cls(
                topic=topic,
                key=key.encode("utf-8", errors="surrogateescape") if key is not None else None,
                value=value,
                headers={str(k): str(v) for k, v in headers.items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptRecord(f"unreadable spool line: {type(exc).__name__}") from exc


class Position(NamedTuple):
    """A byte offset in a segment."""

    segment: int
    offset: int


class Spooled(NamedTuple):
    """A line read back from the spool and the position just after it."""

    line: bytes
    end: Position


def _segment_name(seq: int) -> str:
    return f"{seq:020d}{SEGMENT_SUFFIX}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segments of fsync'd record lines, and the replay position."""

    def __init__(self, directory: Path, *, segment_bytes: int = 4 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments: dict[int, int] = {}  # seq -> durable size in bytes
        self._active: BinaryIO | None = None
        self._active_seq: int | None = None
        self._next_seq = 1
        self._position = Position(1, 0)
        self._depth = 0
        self._opened = False

    # ------------------------------------------------------------------ state

    @property
    def depth(self) -> int:
        """Records appended (durably) and not yet acknowledged by Kafka."""
        return self._depth

    @property
    def position(self) -> Position:
        return self._position

    def segment_files(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"))

    # ------------------------------------------------------------------ open / close

    def open(self) -> None:
        """Find the segments, cut a torn last line, count what is left to replay."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / ".writable"
            probe.write_bytes(b"")  # fail now (not at the first callback) when read-only
            probe.unlink()
            seqs = sorted(
                int(p.name.removesuffix(SEGMENT_SUFFIX))
                for p in self.directory.glob(f"*{SEGMENT_SUFFIX}")
                if p.name.removesuffix(SEGMENT_SUFFIX).isdigit()
            )
            position = self._load_position()
            for seq in [s for s in seqs if s < position.segment]:
                (self.directory / _segment_name(seq)).unlink(missing_ok=True)  # replayed
            seqs = [s for s in seqs if s >= position.segment]
            if seqs and seqs[0] != position.segment:
                position = Position(seqs[0], 0)
            if seqs:
                self._cut_torn_tail(self.directory / _segment_name(seqs[-1]))
            self._segments = {s: (self.directory / _segment_name(s)).stat().st_size for s in seqs}
            self._position = position if seqs else Position(position.segment, 0)
            self._next_seq = max([*seqs, position.segment - 1, 0]) + 1
            self._depth = self._count_pending()
            if not self._depth:
                for seq in seqs:  # everything was replayed before the last stop
                    (self.directory / _segment_name(seq)).unlink(missing_ok=True)
                self._segments = {}
                self._position = Position(self._next_seq, 0)
            self._opened = True
        if self._depth:
            log.info("ingress.spool.opened", depth=self._depth, segments=len(self._segments))

    def close(self) -> None:
        with self._lock:
            if self._active is not None:
                self._active.close()
            self._active, self._active_seq = None, None
            self._opened = False

    def _load_position(self) -> Position:
        path = self.directory / POSITION_FILE
        try:
            body = json.loads(path.read_bytes())
            return Position(int(body["segment"]), int(body["offset"]))
        except FileNotFoundError:
            return Position(1, 0)
        except (ValueError, KeyError, TypeError) as exc:
            # Replaying from the oldest segment duplicates, never loses.
            log.warning("ingress.spool.position_unreadable", error=type(exc).__name__)
            return Position(0, 0)

    def _save_position(self) -> None:
        path = self.directory / POSITION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"segment": self._position.segment, "offset": self._position.offset})
        )
        tmp.replace(path)

    @staticmethod
    def _cut_torn_tail(path: Path) -> None:
        """Drop a partial last line: it was never fsync'd as a whole, never acknowledged."""
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            log.warning("ingress.spool.torn_tail", segment=path.name, dropped=len(data) - keep)
            with path.open("r+b") as handle:
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())

    def _count_pending(self) -> int:
        count = 0
        for seq, size in self._segments.items():
            start = self._position.offset if seq == self._position.segment else 0
            with (self.directory / _segment_name(seq)).open("rb") as handle:
                handle.seek(start)
                count += handle.read(max(size - start, 0)).count(b"\n")
        return count

    # ------------------------------------------------------------------ writing

    def append(self, lines: list[bytes]) -> None:
        """Write ``lines`` (each ending in ``\\n``) and fsync; raise OSError when it cannot."""
        if not lines:
            return
        data = b"".join(lines)
        with self._lock:
            if not self._opened:
                raise OSError("the spool is closed")
            active, seq = self._writable()
            try:
                active.write(data)
                active.flush()
                os.fsync(active.fileno())
            except OSError:
                # Whatever part reached the file is cut off again: it was not acknowledged.
                size = self._segments[seq]
                with contextlib.suppress(OSError):
                    active.truncate(size)
                raise
            self._segments[seq] += len(data)
            self._depth += len(lines)

    def _writable(self) -> tuple[BinaryIO, int]:
        """The active segment (a new one when there is none or it is full) and its number."""
        if self._active is not None and self._active_seq is not None:
            if self._segments[self._active_seq] < self.segment_bytes:
                return self._active, self._active_seq
            self._active.close()  # rotate: the full segment waits for replay, then goes
            self._active, self._active_seq = None, None
        seq = self._next_seq
        self._next_seq += 1
        path = self.directory / _segment_name(seq)
        self._active = path.open("ab")
        self._active_seq = seq
        self._segments[seq] = path.stat().st_size
        _fsync_dir(self.directory)  # the new file's name is durable too
        return self._active, seq

    # ------------------------------------------------------------------ reading

    def read(self, limit: int) -> list[Spooled]:
        """Up to ``limit`` durable lines after the replay position, in order."""
        with self._lock:
            position = self._position
            sizes = dict(self._segments)
        out: list[Spooled] = []
        for seq in sorted(s for s in sizes if s >= position.segment):
            start = position.offset if seq == position.segment else 0
            size = sizes[seq]
            if start >= size:
                continue
            with (self.directory / _segment_name(seq)).open("rb") as handle:
                handle.seek(start)
                data = handle.read(size - start)
            offset = start
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                out.append(Spooled(line, Position(seq, offset)))
                if len(out) >= limit:
                    return out
        return out

    def advance(self, end: Position, count: int) -> None:
        """``count`` records up to ``end`` are in Kafka: move on, delete what is done."""
        with self._lock:
            self._position = end
            self._depth = max(self._depth - count, 0)
            for seq in sorted(self._segments):
                if seq == self._active_seq:
                    continue
                done = seq < end.segment or (
                    seq == end.segment and end.offset >= self._segments[seq]
                )
                if done:
                    (self.directory / _segment_name(seq)).unlink(missing_ok=True)
                    del self._segments[seq]
            if self._depth == 0 and self._active is not None and self._active_seq is not None:
                # Caught up: the active segment holds nothing unreplayed; start afresh.
                self._active.close()
                (self.directory / _segment_name(self._active_seq)).unlink(missing_ok=True)
                del self._segments[self._active_seq]
                self._active, self._active_seq = None, None
            if not self._segments:
                self._position = Position(self._next_seq, 0)
            elif self._position.segment not in self._segments:
                self._position = Position(min(self._segments), 0)
            self._save_position()

    def reject(self, item: Spooled, reason: str) -> None:
        """Keep a record Kafka refuses for good aside (``rejected.jsonl``) and move past it."""
        with (self.directory / REJECTED_FILE).open("ab") as handle:
            handle.write(item.line)
            handle.flush()
            os.fsync(handle.fileno())
        log.error("ingress.spool.rejected", reason=reason, segment=item.end.segment)
        self.advance(item.end, 1)
