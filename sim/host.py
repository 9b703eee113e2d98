"""CPU on one shared emulation host (`cluster.host_cores`): processor sharing, as the OS does.

With FIFO cores, 8 equal CPU-bound nodes on 2 cores finished at c, c, 2c, 2c, ... 4c (mean 2.5c),
while the emulator's node processes, time-sliced by Linux, all finish near 4c: the simulator was
30-40% optimistic on the 8-node validation points. Here the host's `cores` CPU-seconds per second
are shared max-min fairly among the nodes with work, each node at most one core (a node process
runs its Python on one thread). That is the network's sharing with CPU-seconds for bytes, so it
reuses `sim.network`: the host is an endpoint, each node a link of capacity 1.
"""

from __future__ import annotations

import simpy

from sim.network import Link, Network


class SharedHost:
    def __init__(self, env: simpy.Environment, cores: int) -> None:
        self._net = Network(env)
        self._cpu = self._net.endpoint("host-cpu", float(cores))

    def node_cpu(self, name: str) -> Link:
        """A node's share of the host: at most one core."""
        return self._net.link(name, 1.0, self._cpu)

    def run(self, node_cpu: Link, cpu_s: float) -> simpy.Event:
        """Fires when `cpu_s` CPU-seconds of the node's work are done."""
        return self._net.transfer(node_cpu, cpu_s)
