"""ALS test helpers: a served store, podman with its own storage (conftest holds the fixtures)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

import pytest  # noqa: E402

from tests.helpers import require_tool  # noqa: E402


@dataclass
class ServedStore:
    proc: subprocess.Popen[str]
    path: Path

    def stop(self) -> str:
        """SIGTERM (libfuse unmounts and the store exits); its output. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        if os.path.ismount(self.path):  # only after a crash
            subprocess.run(["fusermount3", "-u", str(self.path)], check=False)
        self.output = getattr(self, "output", "") + out + err
        return self.output


class Podman:
    """podman with its own graphroot/runroot (and optionally an ALS) under a temporary directory."""

    def __init__(self, root: Path, als: Path | None) -> None:
        self.exe = require_tool("podman")
        self.root = root
        (root / "graph").mkdir(parents=True)
        (root / "run").mkdir()
        conf = root / "storage.conf"
        text = f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
        if als is not None:
            text += f'[storage.options]\nadditionallayerstores = ["{als}:ref"]\n'
        conf.write_text(text)
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [self.exe, *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        if check and r.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed ({r.returncode}): {r.stderr[-3000:]}")
        return r

    def cleanup(self) -> None:
        self("image", "unmount", "--all", check=False)
        self("rmi", "--all", "--force", check=False)
        # whatever c/storage left mounted under our root (it normally unmounts on exit)
        mounts = Path("/proc/mounts").read_text().splitlines()
        for target in sorted((m.split()[1] for m in mounts if str(self.root) in m.split()[1]), reverse=True):
            subprocess.run(["umount", "-l", target], check=False)
