"""The WebRTC fragment format against tests/vectors/rtc_fragments.json (read by the browser too)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from disco.transport import ChannelClosed
from disco.transport.rtc import RtcChannel, close_notice, fragments

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rtc_fragments.json").read_text(encoding="utf-8")
)

RtcPair = Callable[..., Awaitable[tuple[RtcChannel, RtcChannel]]]  # the rtc_pair fixture


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", VECTORS["frames"], ids=lambda c: c["name"])
def test_a_frame_is_cut_into_the_vectors_messages(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame"])
    assert [m.hex() for m in fragments(frame, case["message_size"])] == case["messages"]


@pytest.mark.parametrize("case", VECTORS["close_notices"], ids=lambda c: c["name"])
def test_a_close_notice_is_the_vectors_message(case: dict[str, Any]) -> None:
    notice = close_notice(case["code"], case["reason"], case["message_size"])
    assert notice.hex() == case["message"]


def test_a_receiver_joins_every_vectors_messages_into_its_frame_and_reads_each_notice(
    rtc_pair: RtcPair,
) -> None:
    async def body() -> None:
        a, b = await rtc_pair()
        try:
            for case in VECTORS["frames"]:
                for message in case["messages"]:
                    a._dc.send(bytes.fromhex(message))
            got = [await b.receive(timeout=20) for _ in VECTORS["frames"]]
            assert [f.hex() for f in got] == [c["frame"] for c in VECTORS["frames"]]
        finally:
            await a.close()
            await b.close()
        for case in VECTORS["close_notices"]:
            a, b = await rtc_pair()
            try:
                a._dc.send(bytes.fromhex(case["message"]))
                with pytest.raises(ChannelClosed) as why:
                    await b.receive(timeout=20)
                assert why.value.code == case["code"]
                sent = bytes.fromhex(case["message"])[3:].decode("utf-8")  # the reason, maybe cut
                assert str(why.value) == f"closed by the peer: {sent or 'closed'}"
            finally:
                await a.close()
                await b.close()

    run(body())


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["name"])
def test_a_receiver_refuses_what_the_vectors_refuse(
    case: dict[str, Any], rtc_pair: RtcPair
) -> None:
    async def body() -> None:
        a, b = await rtc_pair()
        try:
            a._dc.send(bytes.fromhex(case["message"]))
            with pytest.raises(ChannelClosed) as why:
                await b.receive(timeout=20)
            assert why.value.code == case["close_code"]
        finally:
            await a.close()
            await b.close()

    run(body())
