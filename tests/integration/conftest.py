"""Fixtures of the integration tests: a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import serve

from disco.server import ServerHandle


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = serve(tmp_path / "server")
    yield handle
    handle.stop()
