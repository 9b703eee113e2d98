"""`python -m emulator.fuse REF MOUNTPOINT [--record TRACE]` (same as `lazylab lazy mount`)."""

import sys

from emulator.fuse.cli import main

sys.exit(main())
