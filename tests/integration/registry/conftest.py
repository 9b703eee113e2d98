"""Fixtures for registry_mock HTTP tests: a registry on a loopback port and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from registry_mock.app import RunningRegistry, start_registry
from registry_mock.config import RegistrySpec


@pytest.fixture
async def registry() -> AsyncIterator[RunningRegistry]:
    reg = await start_registry(RegistrySpec())
    yield reg
    await reg.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s
