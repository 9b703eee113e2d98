"""Deterministic fault selection: which configured faults hit a given request.

A rule matches a request by repository (fnmatch pattern) and digest (exact or prefix); it then fires for
a `fraction` of the matching requests, decided from numpy SeedSequence([seed, rule, path, occurrence]) so a
given seed reproduces the same decisions for the same request sequence per path, regardless of how
requests to other paths interleave.
"""

from __future__ import annotations

import fnmatch
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .config import FaultKind, FaultRule, FaultSpec

BLOB_BODY_FAULTS = frozenset({FaultKind.RESET, FaultKind.TRUNCATE, FaultKind.CORRUPT})


@dataclass(frozen=True)
class ActiveFaults:
    """The faults selected for one request (at most one rule per kind: the first that fires)."""

    rules: dict[FaultKind, FaultRule] = field(default_factory=dict)
    seed_words: tuple[int, ...] = ()

    def __contains__(self, kind: FaultKind) -> bool:
        return kind in self.rules

    def get(self, kind: FaultKind) -> FaultRule | None:
        return self.rules.get(kind)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def names(self) -> list[str]:
        return sorted(k.value for k in self.rules)

    def corrupt_positions(self, body_len: int) -> list[int]:
        """Body offsets whose byte is flipped by CORRUPT (deterministic)."""
        rule = self.rules.get(FaultKind.CORRUPT)
        if rule is None or body_len == 0:
            return []
        rng = np.random.default_rng(np.random.SeedSequence([*self.seed_words, 0xC0]))
        n = min(rule.corrupt_bytes, body_len)
        return sorted(int(x) for x in rng.choice(body_len, size=n, replace=False))

    def cut_after(self, body_len: int) -> int | None:
        """Bytes sent before a RESET/TRUNCATE cuts the body (None: no cut)."""
        for kind in (FaultKind.RESET, FaultKind.TRUNCATE):
            rule = self.rules.get(kind)
            if rule is not None:
                after = body_len // 2 if rule.after_bytes is None else rule.after_bytes
                return min(after, max(body_len - 1, 0))
        return None


NO_FAULTS = ActiveFaults()


class FaultInjector:
    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._seen: Counter[tuple[int, str]] = Counter()
        self.fired: Counter[str] = Counter()

    def select(self, method: str, path: str, repo: str | None, digest: str | None) -> ActiveFaults:
        if not self.spec.rules:
            return NO_FAULTS
        chosen: dict[FaultKind, FaultRule] = {}
        path_key = zlib.crc32(f"{method} {path}".encode())
        words: tuple[int, ...] = (self.spec.seed, path_key)
        for i, rule in enumerate(self.spec.rules):
            if rule.kind in chosen or not self._matches(rule, repo, digest):
                continue
            n = self._seen[(i, f"{method} {path}")]
            self._seen[(i, f"{method} {path}")] += 1
            words = (self.spec.seed, i, path_key, n)
            if rule.fraction >= 1.0 or self._uniform(words) < rule.fraction:
                chosen[rule.kind] = rule
                self.fired[rule.kind.value] += 1
        return ActiveFaults(chosen, words) if chosen else NO_FAULTS

    @staticmethod
    def _uniform(words: tuple[int, ...]) -> float:
        state = np.random.SeedSequence(list(words)).generate_state(1, dtype=np.uint64)[0]
        return float(state) / 2.0**64

    @staticmethod
    def _matches(rule: FaultRule, repo: str | None, digest: str | None) -> bool:
        if rule.repo is not None and (repo is None or not fnmatch.fnmatchcase(repo, rule.repo)):
            return False
        if rule.digest is not None and (digest is None or not digest.startswith(rule.digest)):
            return False
        return True
