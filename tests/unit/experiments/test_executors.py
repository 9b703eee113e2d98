"""The same sweep inline, on a spawned process pool and on a Dask LocalCluster (worker processes) gives
identical results."""

from __future__ import annotations

import json

import pytest
import xp_engine

from experiments.cache import ResultCache
from experiments.executor import choose_backend, dask_backend, inline_backend, run_sweep
from experiments.framework import Calibration, Experiment

EXP = Experiment(name="xp", run=xp_engine.run, base=xp_engine.BASE,
                 factors={"mode": ["full", "lazy"], "fail": [False, True]}, replications=2)
CAL = Calibration(digest="c", params={"overhead_s": 0.01})


def snapshot(root, keys):
    """Everything a run produced except wall-clock fields, per key."""
    cache = ResultCache(root)
    out = {}
    for k in keys:
        run = cache.load("xp", k)
        env = run.result.to_json_dict()
        for volatile in ("wall_s", "finished_utc", "traceback"):
            env.pop(volatile)
        out[k] = (json.dumps(env, sort_keys=True), run.records, dict(run.tables))
    return out


def sweep(root, backend):
    return run_sweep(EXP, results_dir=root, calibration=CAL, backend=backend, code_version="v",
                     progress=False)


def test_process_pool_matches_inline(tmp_path):
    inline = sweep(tmp_path / "inline", choose_backend(workers=1))
    pooled = sweep(tmp_path / "pool", choose_backend(workers=2))
    assert inline.keys == pooled.keys
    assert (pooled.ran, pooled.failed) == (8, 4)
    assert snapshot(tmp_path / "inline", inline.keys) == snapshot(tmp_path / "pool", pooled.keys)


def test_dask_local_cluster_matches_local_run(tmp_path):
    import distributed
    local = sweep(tmp_path / "local", choose_backend(workers=1))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        remote = sweep(tmp_path / "dask", dask_backend(cluster.scheduler_address))
        assert (remote.ran, remote.failed) == (8, 4)
        # one run in flight at a time (an experiment's max_parallel=1): submissions chain
        again = sweep(tmp_path / "dask", choose_backend(scheduler=cluster.scheduler_address, max_in_flight=1))
        assert (again.ran, again.cached, again.failed) == (4, 4, 4)  # failures are retried
    assert local.keys == remote.keys
    assert snapshot(tmp_path / "local", local.keys) == snapshot(tmp_path / "dask", remote.keys)
    failed = ResultCache(tmp_path / "dask").load_result("xp", remote.keys[2])  # (full, fail, seed 0)
    assert failed is not None and "RuntimeError: asked to fail" in failed.error
    assert "xp_engine.py" in failed.traceback


def test_max_in_flight_one_runs_in_this_process():
    assert choose_backend(workers=4, max_in_flight=1) is inline_backend
    assert choose_backend(workers=1) is inline_backend
    with pytest.raises(ValueError, match="max_in_flight"):
        choose_backend(max_in_flight=0)


def test_shuffled_runs_execute_in_a_reproducible_random_order_with_the_same_results(tmp_path):
    import dataclasses

    def recording(order):
        def backend(tasks):
            order.extend(t.key for t in tasks)
            yield from inline_backend(tasks)
        return backend

    shuffled = dataclasses.replace(EXP, factors={"mode": ["full", "lazy"], "fail": [False]}, replications=6)
    plain = dataclasses.replace(shuffled, shuffle_runs=False)
    shuffled = dataclasses.replace(shuffled, shuffle_runs=True)
    orders: list[list[str]] = [[], [], []]
    runs = [
        run_sweep(exp, results_dir=tmp_path / str(i), calibration=CAL, backend=recording(orders[i]),
                  code_version="v", progress=False)
        for i, exp in enumerate((plain, shuffled, shuffled))
    ]
    assert orders[0] == list(runs[0].keys)  # plan order: a point's seeds back to back
    assert orders[1] == orders[2] != orders[0]  # shuffled, the same way each time
    assert sorted(orders[1]) == sorted(orders[0])
    assert all(r.keys == runs[0].keys for r in runs)  # the plan (and the report's order) is unchanged
    assert snapshot(tmp_path / "0", runs[0].keys) == snapshot(tmp_path / "1", runs[1].keys)
