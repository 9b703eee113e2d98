"""Run a real program from a FUSE-mounted image: `chroot MOUNT /bin/busybox sh -c ...`."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess

import numpy as np
import pytest
from busybox_tree import MOTD, busybox_binary, make_busybox_root
from fuse_helpers import LAZYLAB_MOUNT, start_mount

from startup.trace import Op, Trace
from tests.helpers import require_tool

pytestmark = pytest.mark.fuse

SCRIPT = "cd / && ls /bin | wc -l && cat /etc/motd && sha256sum /etc/motd && readlink /bin/sh && echo done"


def run_chroot(mnt) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("chroot"), str(mnt), "/bin/busybox", "sh", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check_output(r: subprocess.CompletedProcess[str], applets: int) -> None:
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert int(lines[0]) == applets + 1  # the links plus busybox itself
    assert lines[1] == MOTD.decode().rstrip("\n")
    assert lines[2].split()[0] == hashlib.sha256(MOTD).hexdigest()
    assert lines[3:] == ["busybox", "done"]


def test_busybox_chroot_through_a_local_view(tmp_path, mounter):
    busybox = busybox_binary()
    if busybox is None:
        require_tool("busybox")  # fails in CI, skips elsewhere
    src = make_busybox_root(tmp_path / "root", busybox)
    applets = len(os.listdir(src / "bin")) - 1
    m = start_mount([str(src)], tmp_path / "mnt", trace=tmp_path / "busybox.trace")
    mounter.append(m)
    check_output(run_chroot(m.mountpoint), applets)
    m.stop(signal.SIGTERM)
    trace = Trace.load(tmp_path / "busybox.trace")
    busybox_reads = [o for o in trace if o.op is Op.READ and o.path == "bin/busybox"]
    size = os.path.getsize(src / "bin/busybox")
    assert busybox_reads and all(o.offset + o.length <= size for o in busybox_reads)
    # without kernel_cache every exec reads the binary again through the view: >1 pass recorded
    assert sum(o.length for o in busybox_reads) > 0
    assert any(o.op is Op.READ and o.path == "etc/motd" for o in trace)


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked"])
def test_busybox_chroot_through_the_lazy_store(tmp_path, mounter, fmt):
    """busybox image in registry_mock, mounted lazily by `lazylab lazy mount`, run with chroot."""
    from imageformat.build import build_image
    from registry_mock.app import running_registry

    busybox = busybox_binary()
    if busybox is None:
        require_tool("busybox")
    skopeo = require_tool("skopeo")
    src = make_busybox_root(tmp_path / "root", busybox)
    applets = len(os.listdir(src / "bin")) - 1
    unused = np.random.default_rng(np.random.SeedSequence(5)).integers(0, 256, 2_000_000, dtype=np.uint8)
    (src / "usr/share").mkdir(parents=True)
    (src / "usr/share/never-read.bin").write_bytes(unused.tobytes())  # incompressible, never read
    built = build_image(src, tmp_path / "oci", "v1", fmt)
    with running_registry() as reg:
        ref = f"{reg.address}/lab/busybox:v1"
        subprocess.run(
            [skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'oci'}:v1", f"docker://{ref}"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        mark = len(reg.records)
        m = start_mount([ref], tmp_path / "mnt", trace=tmp_path / "lazy.trace", command=LAZYLAB_MOUNT)
        mounter.append(m)
        check_output(run_chroot(m.mountpoint), applets)
        m.stop(signal.SIGTERM)
        assert m.proc.returncode == 0
        layer = built.layers[0]
        layer_gets = [r for r in reg.records[mark:] if r.get("digest") == layer.digest]
    moved = sum(r["bytes_sent"] for r in layer_gets)
    assert layer_gets and all(r["ranges"] for r in layer_gets)
    assert 0 < moved < layer.size - 2_000_000  # by range requests only, and never the unread file
    print(f"\n[{fmt}] busybox chroot: {moved} of {layer.size} blob bytes moved ({moved / layer.size:.0%})")
    trace = Trace.load(tmp_path / "lazy.trace")
    assert trace.image == ref
    assert any(o.op is Op.READ and o.path == "bin/busybox" for o in trace)
