"""Fixtures of the target tests: a real S3 API server (moto) on 127.0.0.1, and targets on it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from odeion_archive.targets import TargetSpec

# The helper modules next to the tests (_s3, _archives) import by their plain names.
sys.path.insert(0, str(Path(__file__).parent))

from _s3 import ACCESS_KEY, SECRET_KEY, FailingProxy, S3Server, s3_spec


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def running_s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The S3 server, started again after a test that stopped it."""
    yield s3_server
    if s3_server._server is None:
        s3_server.start()


@pytest.fixture
def bucket(running_s3: S3Server) -> str:
    return running_s3.create_bucket()


@pytest.fixture
def credentials_file(tmp_path: Path) -> Path:
    path = tmp_path / "s3.credentials"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n')
    return path


@pytest.fixture
def s3_target_spec(running_s3: S3Server, bucket: str, credentials_file: Path) -> TargetSpec:
    return s3_spec(running_s3.endpoint, bucket, credentials_file)


@pytest.fixture
def dir_target_spec(tmp_path: Path) -> TargetSpec:
    path = tmp_path / "nas"
    path.mkdir()
    return TargetSpec.directory("nas", path)


@pytest.fixture(params=["dir", "s3"])
def target_spec(request: pytest.FixtureRequest) -> TargetSpec:
    """A target of each built-in kind."""
    spec: TargetSpec = request.getfixturevalue(f"{request.param}_target_spec")
    return spec


@pytest.fixture
def failing_proxy(
    running_s3: S3Server,
) -> Iterator[Callable[[Callable[[str, str], bool]], FailingProxy]]:
    proxies: list[FailingProxy] = []

    def make(fail: Callable[[str, str], bool]) -> FailingProxy:
        proxy = FailingProxy(running_s3.endpoint, fail)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
