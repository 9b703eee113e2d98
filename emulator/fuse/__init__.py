"""The FUSE adapter: a read-only `FileSystemView` exposed to the kernel through libfuse 3.

Owns: `mount()` (mfusepy over Debian's libfuse3; blocks until unmounted, unmounts cleanly on
SIGINT/SIGTERM), the trace recorder that turns what a real program does through the mount
into a `startup.trace.Trace`, local views (an extracted directory; a TOC + blob) for tests and
for comparing FUSE with in-process reads, and the `lazylab lazy mount` parser hook.
Importing this package does not import mfusepy; `mount()` does (FuseUnavailableError if the
library is missing).
"""

from emulator.fuse.localview import DirectoryView
from emulator.fuse.mount import FuseUnavailableError, MountError, mount
from emulator.fuse.recorder import RecordedOp, TraceRecorder

__all__ = ["DirectoryView", "FuseUnavailableError", "MountError", "RecordedOp", "TraceRecorder", "mount"]
