"""The client's bearer-token flow against registry_mock: anonymous pull tokens, credentials, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from emulator_fixtures import MockImages

from emulator.client import ClientOptions, RegistryClient
from emulator.errors import AuthError
from emulator.lazyview import LazyOptions, open_lazy_view
from emulator.reference import parse_reference
from registry_mock.app import running_registry
from registry_mock.auth import add_user
from registry_mock.config import AuthMode, AuthSpec, RegistrySpec


@pytest.fixture
def users(tmp_path: Path) -> str:
    path = tmp_path / "users"
    add_user(path, "alice", "s3cret")
    return str(path)


def _ref(images: MockImages, address: str) -> str:
    key = sorted(images.refs)[0]
    return f"{address}/{images.refs[key]}"


async def test_token_auth_with_and_without_credentials(mock_images: MockImages, users: str) -> None:
    spec = RegistrySpec(auth=AuthSpec(mode=AuthMode.TOKEN, users_file=users, allow_anonymous_pull=False))
    with running_registry(spec, storage=mock_images.storage) as reg:
        ref = parse_reference(_ref(mock_images, reg.address))
        async with RegistryClient(ClientOptions(username="alice", password="s3cret")) as c:
            img = await c.resolve(ref)
            assert img.layers
        async with RegistryClient(ClientOptions(username="alice", password="wrong")) as c:
            with pytest.raises(AuthError):
                await c.resolve(ref)
        async with RegistryClient() as c:
            with pytest.raises(AuthError):
                await c.resolve(ref)


def test_anonymous_pull_token_through_the_view(mock_images: MockImages, users: str) -> None:
    spec = RegistrySpec(auth=AuthSpec(mode=AuthMode.TOKEN, users_file=users, allow_anonymous_pull=True))
    seed = sorted(mock_images.refs)[0][0]
    files = mock_images.files(seed)
    name = sorted(n for n, d in files.items() if d)[0]
    with running_registry(spec, storage=mock_images.storage) as reg:
        with open_lazy_view(_ref(mock_images, reg.address), LazyOptions()) as view:
            assert view.read(name, 0, 1 << 20) == files[name][: 1 << 20]


async def test_rate_limited_registry_is_retried_after_retry_after(mock_images: MockImages) -> None:
    from registry_mock.config import LinkSpec

    spec = RegistrySpec(link=LinkSpec(rate_limit_per_s=20.0, rate_burst=2))
    with running_registry(spec, storage=mock_images.storage) as reg:
        ref = parse_reference(_ref(mock_images, reg.address))
        async with RegistryClient(ClientOptions(max_retries=8, backoff_initial_s=0.01)) as c:
            img = await c.resolve(ref)
            import asyncio

            blobs = await asyncio.gather(*(c.fetch_blob(ref, img.config_digest) for _ in range(8)))
        assert len({bytes(b) for b in blobs}) == 1
        assert any(r["status"] == 429 for r in reg.records)  # the limit did bite, and was retried
