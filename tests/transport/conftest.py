"""WebRTC peers for the transport tests: loopback only, no STUN server, SDP handed over directly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
import pytest

from disco.transport.rtc import RtcChannel, RtcLink

RtcPair = Callable[..., Awaitable[tuple[RtcChannel, RtcChannel]]]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """ICE offers loopback candidates only (it skips 127.0.0.1 otherwise): tests stay on it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def _connected(**options: Any) -> tuple[RtcChannel, RtcChannel]:
    offerer, answerer = RtcLink(**options), RtcLink(**options)
    await offerer.accept(await answerer.answer(await offerer.offer()))
    # ICE, DTLS and SCTP on loopback: well under a second
    return await offerer.channel(timeout=20), await answerer.channel(timeout=20)


@pytest.fixture
def rtc_pair() -> RtcPair:
    """`await rtc_pair(**options)`: two connected `RtcChannel` ends (options: RtcChannel's)."""
    return _connected
