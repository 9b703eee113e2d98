"""Registers the emulator integration fixtures (defined in emulator_fixtures)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emulator_fixtures import built_images, mock_images, pushed_image, registry

__all__ = ["built_images", "mock_images", "pushed_image", "registry"]
