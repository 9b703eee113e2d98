"""The lazy store against registry_mock with every fault mode: right bytes or a clear error, never
wrong bytes, and nothing half-written in the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from emulator_fixtures import MockImages

from emulator.client import ClientOptions
from emulator.errors import EmulatorError
from emulator.lazyview import LazyOptions, open_lazy_view
from emulator.store import Granularity, StoreOptions
from imageformat.errors import FormatError
from registry_mock.app import running_registry
from registry_mock.config import FaultKind, FaultRule, FaultSpec, RegistrySpec
from startup.scenario import NoPrefetch

# (kind, rule fields, whether every read must succeed despite the fault)
FAULTS = [
    (FaultKind.ERROR_5XX, {"fraction": 0.3}, True),
    (FaultKind.RESET, {"fraction": 0.3}, True),
    (FaultKind.TRUNCATE, {"fraction": 0.3}, True),
    (FaultKind.SLOW_FIRST_BYTE, {"fraction": 0.3, "delay_s": 0.02}, True),
    (FaultKind.RANGE_IGNORE, {}, True),
    (FaultKind.MULTIRANGE_400, {}, True),
    (FaultKind.RANGE_MERGE, {}, True),
    (FaultKind.REDIRECT, {}, True),
    (FaultKind.CORRUPT, {"fraction": 0.3}, False),
    (FaultKind.RANGE_416, {}, False),
]
FAST_RETRY = ClientOptions(max_retries=6, backoff_initial_s=0.001, backoff_max_s=0.01)


def _reads(files: dict[str, bytes]) -> list[tuple[str, int, int]]:
    names = sorted(n for n, d in files.items() if d)
    picks = names[:: max(1, len(names) // 12)]
    out = []
    for n in picks:
        size = len(files[n])
        out += [(n, 0, 4096), (n, size // 2, 70_000), (n, max(0, size - 10), 100)]
    return out


@pytest.mark.parametrize(("kind", "fields", "must_succeed"), FAULTS, ids=[f[0].value for f in FAULTS])
@pytest.mark.parametrize("granularity", [Granularity.CHUNK, Granularity.BLOCK])
def test_fault_mode(
    mock_images: MockImages,
    tmp_path: Path,
    kind: FaultKind,
    fields: dict,
    must_succeed: bool,
    granularity: Granularity,
) -> None:
    seed = 1
    files = mock_images.files(seed)
    spec = RegistrySpec(faults=FaultSpec(seed=7, rules=(FaultRule(kind=kind, **fields),)))
    cache_dir = tmp_path / "cache"
    failures = 0
    with running_registry(spec, storage=mock_images.storage) as reg:
        for (s, fmt), repo_tag in mock_images.refs.items():
            if s != seed:
                continue
            opts = LazyOptions(
                client=FAST_RETRY,
                store=StoreOptions(granularity=granularity),
                prefetch=NoPrefetch(),
                cache_dir=cache_dir / fmt.replace(":", "-"),
            )
            try:
                opened = open_lazy_view(f"{reg.address}/{repo_tag}", opts)
            except (EmulatorError, FormatError) as e:
                assert not must_succeed, f"{kind.value} {fmt}: open failed: {e}"
                failures += 1
                continue
            with opened as view:
                for path, off, n in _reads(files):
                    try:
                        got = view.read(path, off, n)
                    except OSError as e:
                        assert not must_succeed, f"{kind.value} {fmt}: {path}: {e}"
                        assert isinstance(e.__cause__, EmulatorError | FormatError), repr(e)
                        failures += 1
                        continue
                    assert got == files[path][off : off + n], f"{kind.value} {fmt}: wrong bytes for {path}"
    if kind is FaultKind.RANGE_416:
        assert failures > 0  # multi-range 416 falls back; single 416 is a clear error
    # nothing half-written: no temp files, and a fresh store over the same disk cache reads right
    assert not list(cache_dir.rglob("*.tmp"))
    with running_registry(RegistrySpec(), storage=mock_images.storage) as clean:
        for (s, fmt), repo_tag in mock_images.refs.items():
            if s != seed:
                continue
            opts = LazyOptions(
                store=StoreOptions(granularity=granularity),
                prefetch=NoPrefetch(),
                cache_dir=cache_dir / fmt.replace(":", "-"),
            )
            with open_lazy_view(f"{clean.address}/{repo_tag}", opts) as view:
                for path, off, n in _reads(files):
                    assert view.read(path, off, n) == files[path][off : off + n]


@pytest.mark.parametrize("mode", ["full", "partial"])
@pytest.mark.parametrize(
    "kind",
    [
        FaultKind.ERROR_5XX,
        FaultKind.RESET,
        FaultKind.TRUNCATE,
        FaultKind.RANGE_IGNORE,
        FaultKind.MULTIRANGE_400,
        FaultKind.RANGE_MERGE,
        FaultKind.REDIRECT,
        FaultKind.CORRUPT,
    ],
    ids=lambda k: k.value,
)
async def test_full_and_partial_under_faults(
    mock_images: MockImages, tmp_path: Path, mode: str, kind: FaultKind
) -> None:
    """A full or partial pull under a fault: the start succeeds with the right bytes, or its record says
    why it failed; a corrupting registry never yields a successful start with wrong content."""
    from emulator.modes import StartSpec, run_start_detailed
    from emulator.node import EmulatedNode
    from emulator.reference import parse_reference
    from registry_mock.app import start_registry
    from startup.modes import PullMode
    from startup.trace import Op, Trace, TraceOp

    seed = 1
    files = mock_images.files(seed)
    names = sorted(n for n, d in files.items() if d)[::7]
    trace = Trace.of([TraceOp(op=Op.READ, path=n, offset=0, length=1 << 30) for n in names])
    expected = __import__("hashlib").sha256(b"".join(files[n] for n in names)).hexdigest()
    fields = (
        {"fraction": 0.3}
        if kind in (FaultKind.ERROR_5XX, FaultKind.RESET, FaultKind.TRUNCATE, FaultKind.CORRUPT)
        else {}
    )
    spec = RegistrySpec(faults=FaultSpec(seed=3, rules=(FaultRule(kind=kind, repo="lab/*", **fields),)))
    fmt = "zstd:chunked" if (seed, "zstd:chunked") in mock_images.refs else "estargz"
    async with await start_registry(spec, storage=mock_images.storage) as reg:
        node = EmulatedNode("n", tmp_path / "node", client_options=FAST_RETRY)
        try:
            res = await run_start_detailed(
                node,
                parse_reference(f"{reg.address}/{mock_images.refs[(seed, fmt)]}"),
                StartSpec(mode=PullMode(mode), trace=trace),
            )
        finally:
            await node.close()
        if not fields:  # deterministic kinds: the fault did happen (fractional ones may miss 3 requests)
            assert reg.state.faults.fired[kind.value] > 0
    if res.record.ok:
        assert res.replay is not None and res.replay.digest == "sha256:" + expected
    else:
        assert kind is FaultKind.CORRUPT, res.record.error
        assert res.record.error
