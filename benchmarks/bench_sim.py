"""Simulator performance: events/s vs raw SimPy, scaling in nodes, and the 10k-node goal.

Run: .venv/bin/python benchmarks/bench_sim.py [--quick]

1. The ceiling: raw SimPy timeouts (processes looping on `env.timeout`) in this process.
2. Per-node simulation (cohorts off), a 256 MiB image and a 500-read trace, lazy with background
   fetch: 10, 100, 1,000 nodes -> events, wall, events/s (and as a fraction of the ceiling),
   wall per node x read.
3. The goal: a lazy rollout of a 1 GiB image with a 2,000-read trace to 10, 100, 1,000 and
   10,000 nodes (identical nodes starting together -> one exact cohort), wall and peak RSS.
Each case runs in a fresh child process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

GOAL = [
    "name=goal",
    "mode=lazy",
    "cluster.rtt_s=0.02",
    'images=[{kind="synthetic", name="app", layers=[{name="base", files=5000, total_bytes=1073741824}]}]',
    'workload={kind="synthetic", reads=2000, working_set_fraction=0.1}',
]
LIGHT = [
    "name=light",
    "mode=lazy",
    "cluster.rtt_s=0.02",
    'images=[{kind="synthetic", name="app", layers=[{name="base", files=1500, total_bytes=268435456}]}]',
    'workload={kind="synthetic", reads=500, working_set_fraction=0.1}',
]


def raw_simpy(events: int = 600_000) -> float:
    import simpy

    env = simpy.Environment()

    def loop(k: int):  # type: ignore[no-untyped-def]
        d = 0.001 * (1 + k % 7)
        while True:
            yield env.timeout(d)

    for k in range(1000):
        env.process(loop(k))
    t0 = time.perf_counter()
    n = 0
    while n < events:
        env.step()
        n += 1
    return n / (time.perf_counter() - t0)


def child(overrides: list[str]) -> None:
    import resource

    from sim.run import run_scenario
    from startup.scenario_io import scenario_from_dict

    s = scenario_from_dict({}, overrides=overrides)
    ceiling = raw_simpy(200_000)
    c0 = time.process_time()
    run = run_scenario(s)
    cpu_s = time.process_time() - c0
    r = run.result
    print(
        json.dumps(
            {
                "events": r.events,
                "wall_s": r.wall_s,
                "loop_s": r.loop_wall_s,
                "cpu_s": cpu_s,
                "cohorts": r.cohorts,
                "error": r.error,
                "records": len(run.records),
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "ceiling_events_per_s": ceiling,
                "sim_time_s": r.sim_time_s,
                "p95_ttr_s": sorted(x.time_to_ready_s for x in run.records)[
                    int(0.95 * (len(run.records) - 1))
                ],
            }
        )
    )


def case(base: list[str], nodes: int, cohorts: bool) -> dict[str, float]:
    overrides = [
        *base,
        f"cluster.nodes={nodes}",
        f'arrivals={{kind="rollout", replicas={nodes}}}',
        f"sim.cohorts={'true' if cohorts else 'false'}",
    ]
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(overrides)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    quick = "--quick" in sys.argv
    ceiling = raw_simpy()
    print(f"raw SimPy timeouts: {ceiling:,.0f} events/s (the ceiling on this machine, this process)")
    print("(loop s = the event loop alone; wall s adds building images/traces and collecting records;")
    print(" CPU s = process CPU time of the whole run, less sensitive to other load on the machine)")
    print()
    print("per-node simulation (cohorts off), 256 MiB image, 500 reads, lazy + background fetch")
    print(
        f"{'nodes':>7} {'events':>10} {'loop s':>7} {'wall s':>7} {'CPU s':>7} {'events/s':>9} "
        f"{'x ceiling':>9} {'CPU us/(node*read)':>19} {'RSS MiB':>8}"
    )
    for n in (10, 100) if quick else (10, 100, 1000):
        r = case(LIGHT, n, cohorts=False)
        eps = r["events"] / r["loop_s"]
        print(
            f"{n:>7} {r['events']:>10,.0f} {r['loop_s']:>7.2f} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} "
            f"{eps:>9,.0f} {eps / r['ceiling_events_per_s']:>9.2f} {1e6 * r['cpu_s'] / (n * 500):>19.1f} "
            f"{r['rss_mib']:>8.0f}"
        )
    print()
    print("goal: lazy rollout of a 1 GiB image, 2,000-read trace (identical nodes -> one exact cohort)")
    print(
        f"{'nodes':>7} {'cohorts':>7} {'events':>10} {'loop s':>7} {'wall s':>7} {'RSS MiB':>8} "
        f"{'p95 TTR s':>10} {'records':>8}"
    )
    for n in (10, 100, 1000) if quick else (10, 100, 1000, 10_000):
        r = case(GOAL, n, cohorts=True)
        print(
            f"{n:>7} {r['cohorts']:>7.0f} {r['events']:>10,.0f} {r['loop_s']:>7.2f} {r['wall_s']:>7.2f} "
            f"{r['rss_mib']:>8.0f} {r['p95_ttr_s']:>10.2f} {r['records']:>8.0f}"
        )
    if not quick:
        print()
        print("the same goal without cohorts (every node simulated), to check cohorts change nothing")
        for n in (10, 100):
            r = case(GOAL, n, cohorts=False)
            print(
                f"{n:>7} nodes: {r['events']:,.0f} events, loop {r['loop_s']:.2f} s, "
                f"wall {r['wall_s']:.2f} s, {r['events'] / r['loop_s']:,.0f} events/s, "
                f"p95 TTR {r['p95_ttr_s']:.2f} s"
            )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
