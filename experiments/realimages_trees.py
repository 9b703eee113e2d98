"""Root file systems made from software on this machine, for the real images (`realimages`).

Each `collect_*` function fills an empty directory; each `fingerprint_*` function cheaply names
its inputs (package versions, the busybox binary's digest, the Debian mirror and package list), so
the image cache notices when the machine's software changes. Files are copied with their mode
and mtime; symlinks are kept as symlinks, and a path reached through a symlinked directory
(Debian's merged /usr: /lib -> usr/lib) gets that symlink too, so the dynamic loader finds
libraries where `ldd` saw them.

- busybox: Debian's busybox-static at /bin/busybox, one relative symlink per applet, a few /etc
  files and the `/app/start.sh` script the shipped busybox trace runs.
- python: the files of Debian's python3.11 packages (docs and manuals left out), the byte-code
  caches the machine compiled for them, every shared library `ldd` finds for the interpreter and
  its extension modules, and the loader; `chroot ROOT /usr/bin/python3 -c 'import json, ssl'` works.
- debian: `debootstrap --variant=minbase` of bookworm plus python3, perl and gcc (a few hundred MB)
  from the mirror apt uses here; slow (minutes, network), so never built by the default tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from experiments.errors import ExperimentError


class ImageRecipeError(ExperimentError):
    """A real image cannot be made on this machine (a tool or package is missing, a build failed)."""


PYTHON_PACKAGES = (
    "python3-minimal",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libpython3-stdlib",
    "python3",
    "python3.11",
)
_SKIP_PREFIXES = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/lintian/", "/usr/share/doc-base/")
DEBIAN_SUITE = "bookworm"
DEBIAN_EXTRA_PACKAGES = ("python3", "perl", "gcc", "libc6-dev")
BUSYBOX_SCRIPT = """#!/bin/sh
# The startup script of the busybox image: what a small entrypoint typically does.
set -e
. /etc/app.conf
echo "starting $APP_NAME on $(cat /etc/hostname)"
grep -q root /etc/passwd
for f in /etc/motd /etc/app.conf; do wc -c "$f"; done
ls /bin | wc -l
sha256sum /etc/motd
head -n 3 /usr/share/app/data.txt
find /usr/share/app -type f | sort
echo ready
"""


def run(cmd: list[str], *, timeout_s: float = 600) -> str:
    """stdout of `cmd`; ImageRecipeError naming the command when it is missing or fails."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise ImageRecipeError(f"{cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageRecipeError(f"{' '.join(cmd)} took more than {timeout_s:.0f} s") from None
    if r.returncode != 0:
        raise ImageRecipeError(f"{' '.join(cmd[:4])} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class HostCopier:
    """Copies host paths into `root` at the same absolute location (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dirs: dict[str, None] = {}

    def _dst(self, host: str) -> Path:
        return self.root / host.lstrip("/")

    def add(self, host_path: str, _depth: int = 0) -> None:
        if _depth > 40:
            raise ImageRecipeError(f"too many symlinks resolving {host_path}")
        parts = [p for p in os.path.normpath(host_path).split("/") if p]
        cur = ""
        for i, part in enumerate(parts):
            cur = f"{cur}/{part}"
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                raise ImageRecipeError(f"{cur} does not exist on this machine") from None
            dst = self._dst(cur)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(cur)
                if not os.path.lexists(dst):
                    os.symlink(target, dst)
                resolved = target if target.startswith("/") else os.path.join(os.path.dirname(cur), target)
                self.add(os.path.join(resolved, *parts[i + 1 :]), _depth + 1)
                return
            if stat.S_ISDIR(st.st_mode):
                if not dst.exists():
                    dst.mkdir(mode=stat.S_IMODE(st.st_mode))
                    os.chmod(dst, stat.S_IMODE(st.st_mode))
                self._dirs[cur] = None
                continue
            if stat.S_ISREG(st.st_mode) and i == len(parts) - 1:
                if not dst.exists():
                    shutil.copy2(cur, dst, follow_symlinks=False)
                return
            raise ImageRecipeError(f"{cur}: not a regular file, directory or symlink")

    def finish(self) -> None:
        """Give every copied directory its host mtime (copying files into it changed it)."""
        for d in sorted(self._dirs, key=len, reverse=True):
            st = os.stat(d)
            os.utime(self._dst(d), ns=(st.st_atime_ns, st.st_mtime_ns))


def package_versions(packages: tuple[str, ...]) -> str:
    """'pkg=version ...' of installed Debian packages; ImageRecipeError if one is missing."""
    versions = []
    for pkg in packages:
        try:
            out = run(["dpkg-query", "-W", "-f", "${Status}|${Version}", pkg])
        except ImageRecipeError:
            out = ""
        status, _, version = out.partition("|")
        if "installed" not in status.split():
            raise ImageRecipeError(f"Debian package {pkg} is not installed (apt-get install {pkg})")
        versions.append(f"{pkg}={version}")
    return " ".join(versions)


def package_files(packages: tuple[str, ...]) -> list[str]:
    """Files and symlinks of installed packages (docs and manuals left out)."""
    package_versions(packages)
    files: list[str] = []
    for pkg in packages:
        for line in run(["dpkg", "-L", pkg]).splitlines():
            if line.startswith(_SKIP_PREFIXES) or line in ("/.", ""):
                continue
            if os.path.islink(line) or (os.path.lexists(line) and not os.path.isdir(line)):
                files.append(line)
    return files


_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def shared_libraries(elf: str) -> list[str]:
    """Absolute paths `ldd` resolves for `elf` (the loader included); [] for static binaries."""
    r = subprocess.run(["ldd", elf], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return []
    out = []
    for line in r.stdout.splitlines():
        if "not found" in line:
            raise ImageRecipeError(f"{elf}: {line.strip()}")
        m = _LDD_LINE.search(line)
        if m:
            out.append(m.group(1))
    return out


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def fingerprint_python() -> str:
    return f"python:{package_versions(PYTHON_PACKAGES)}"


def collect_python(root: Path) -> None:
    """Debian's python3.11 with its standard library and the libraries it loads (see module doc)."""
    files = package_files(PYTHON_PACKAGES)
    copier = HostCopier(root)
    elves: list[str] = []
    for f in files:
        copier.add(f)
        if os.path.isfile(f) and not os.path.islink(f) and _is_elf(f):
            elves.append(f)
        if f.endswith(".py"):
            cache = Path(os.path.dirname(f)) / "__pycache__"
            stem = os.path.basename(f)[:-3]
            for pyc in sorted(cache.glob(f"{stem}.cpython-311*.pyc")) if cache.is_dir() else ():
                copier.add(str(pyc))
    libs: dict[str, None] = {}
    for elf in elves:
        for lib in shared_libraries(elf):
            libs[lib] = None
    for lib in libs:
        copier.add(lib)
    for d in ("tmp", "etc"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    copier.finish()


def busybox_binary() -> str:
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.isfile(p)), None)
    if busybox is None:
        raise ImageRecipeError("busybox is not installed (apt-get install busybox-static)")
    if _is_elf(busybox) and shared_libraries(busybox):
        raise ImageRecipeError(f"{busybox} is dynamically linked (install busybox-static)")
    return busybox


def fingerprint_busybox() -> str:
    script = hashlib.sha256(BUSYBOX_SCRIPT.encode()).hexdigest()[:16]
    return f"busybox:{file_sha256(busybox_binary())}:{script}"


def collect_busybox(root: Path) -> None:
    """Debian's busybox-static, its applet links, /etc files, and the startup script."""
    busybox = busybox_binary()
    for d in ("bin", "etc", "tmp", "root", "app", "usr/share/app"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(busybox, root / "bin/busybox")
    applets = sorted(set(run([busybox, "--list"]).split()) - {"busybox"})
    for name in applets:
        os.symlink("busybox", root / "bin" / name)
    etc = {
        "passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        "group": "root:x:0:\nnogroup:x:65534:\n",
        "hostname": "lazylab-busybox\n",
        "motd": "hello from a lazily pulled busybox image\n",
        "app.conf": "APP_NAME=lab-app\nAPP_PORT=8080\n",
    }
    for name, text in etc.items():
        (root / "etc" / name).write_text(text)
    data = "".join(f"record {i:05d} value {(i * 7919) % 10007}\n" for i in range(20000))
    (root / "usr/share/app/data.txt").write_text(data)
    (root / "usr/share/app/unused.txt").write_text(data[::-1])
    (root / "app/start.sh").write_text(BUSYBOX_SCRIPT)
    (root / "app/start.sh").chmod(0o755)
    for p in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        os.utime(p, ns=(1_700_000_000_000_000_000,) * 2, follow_symlinks=False)
    os.utime(root, ns=(1_700_000_000_000_000_000,) * 2)


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 `.sources` or one-line `sources.list`)."""
    candidates = [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            uri = m.group(1) or m.group(2)
            if uri and "security" not in uri and uri.startswith(("http://", "https://")):
                return uri
    raise ImageRecipeError("no Debian mirror found in /etc/apt/sources.list(.d)")


def fingerprint_debian() -> str:
    return f"debian:{DEBIAN_SUITE}:{apt_mirror()}:{','.join(DEBIAN_EXTRA_PACKAGES)}"


def collect_debian(root: Path, *, cache_dir: Path) -> None:
    """debootstrap minbase bookworm + DEBIAN_EXTRA_PACKAGES into `root` (minutes; needs the mirror)."""
    if shutil.which("debootstrap") is None:
        raise ImageRecipeError("debootstrap is not installed (apt-get install debootstrap)")
    mirror = apt_mirror()
    cache_dir.mkdir(parents=True, exist_ok=True)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={cache_dir}",
            f"--include={','.join(DEBIAN_EXTRA_PACKAGES)}",
            DEBIAN_SUITE,
            str(root),
            mirror,
        ],
        timeout_s=3600,
    )
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / leftover).glob("*"):
            if p.is_file():
                p.unlink()
    for p in root.rglob("*"):
        if p.is_socket():
            p.unlink()
