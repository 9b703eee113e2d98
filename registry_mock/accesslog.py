"""Structured access log: one JSON object per request (ts, method, path, status, ranges, bytes_sent,
duration_s, repo, digest, ...), kept in memory for in-process users and appended to a file if configured."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import IO, Any

MAX_IN_MEMORY = 100_000


class AccessLog:
    def __init__(self, path: str | Path | None = None) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_IN_MEMORY)
        self._file: IO[str] | None = open(path, "a", buffering=1) if path else None

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_access_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines access log file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
