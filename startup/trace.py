"""A workload's file accesses, in order, with the think time before each.

File format (JSON lines, one object per operation):
    {"op": "read", "path": "usr/bin/python3", "offset": 0, "length": 4096, "think_s": 0.0012}
`op` is one of open, stat, read, readlink, listdir; offset/length only matter for read.
The first line may be a header {"trace": 1, "name": ..., "image": ...}.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

TRACE_FORMAT_VERSION = 1


class TraceError(ValueError):
    """A trace file or trace operation that is malformed."""


class Op(StrEnum):
    OPEN = "open"
    STAT = "stat"
    READ = "read"
    READLINK = "readlink"
    LISTDIR = "listdir"


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceOp:
    op: Op
    path: str
    offset: int = 0
    length: int = 0
    think_s: float = 0.0  # compute time before this operation starts

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise TraceError(f"offset (={self.offset}) must be >= 0")
        if self.length < 0:
            raise TraceError(f"length (={self.length}) must be >= 0")
        if not math.isfinite(self.think_s) or self.think_s < 0:
            raise TraceError(f"think_s (={self.think_s}) must be a finite number >= 0")


@dataclass(frozen=True, kw_only=True)
class Trace:
    name: str = "trace"
    image: str = ""
    ops: tuple[TraceOp, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[TraceOp]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def bytes_read(self) -> int:
        return sum(o.length for o in self.ops if o.op is Op.READ)

    @property
    def think_s(self) -> float:
        return sum(o.think_s for o in self.ops)

    def paths(self) -> list[str]:
        """Paths in first-access order (what `--prioritize` wants)."""
        return list(dict.fromkeys(o.path for o in self.ops))

    def dumps(self) -> str:
        lines = [json.dumps({"trace": TRACE_FORMAT_VERSION, "name": self.name, "image": self.image})]
        for o in self.ops:
            d = asdict(o)
            d["op"] = o.op.value
            lines.append(json.dumps(d, separators=(",", ":")))
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())

    @classmethod
    def loads(cls, text: str, *, source: str = "<trace>") -> Trace:
        name, image = "trace", ""
        ops: list[TraceOp] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TraceError(f"{source}:{lineno}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise TraceError(f"{source}:{lineno}: expected an object")
            if "trace" in obj:
                if obj["trace"] != TRACE_FORMAT_VERSION:
                    raise TraceError(f"{source}:{lineno}: unsupported trace version {obj['trace']!r}")
                name, image = str(obj.get("name", name)), str(obj.get("image", image))
                continue
            unknown = set(obj) - {"op", "path", "offset", "length", "think_s"}
            if unknown:
                raise TraceError(f"{source}:{lineno}: unknown keys {sorted(unknown)}")
            try:
                ops.append(
                    TraceOp(
                        op=Op(obj["op"]),
                        path=str(obj["path"]),
                        offset=int(obj.get("offset", 0)),
                        length=int(obj.get("length", 0)),
                        think_s=float(obj.get("think_s", 0.0)),
                    )
                )
            except KeyError as e:
                raise TraceError(f"{source}:{lineno}: missing key {e}") from None
            except (TypeError, ValueError) as e:
                raise TraceError(f"{source}:{lineno}: {e}") from None
        return cls(name=name, image=image, ops=tuple(ops))

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise TraceError(f"cannot read trace {p}: {e.strerror}") from None
        return cls.loads(text, source=str(p))

    @classmethod
    def of(cls, ops: Iterable[TraceOp], *, name: str = "trace", image: str = "") -> Trace:
        return cls(name=name, image=image, ops=tuple(ops))
