"""`StatusCast`: at most one status per interval, an interval that grows with the session."""

from __future__ import annotations

import asyncio

from disco.server.status import STATUS_INTERVAL_S, STATUS_RATE, StatusCast


def test_changes_fold_into_one_broadcast_per_interval() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def broadcast() -> None:
            times.append(loop.time())

        cast = StatusCast(broadcast, interval=0.2)
        for _ in range(50):  # a burst: the first goes at once, the rest in one, 0.2 s later
            cast.changed()
            await asyncio.sleep(0)
        async with asyncio.timeout(5):
            while len(times) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # nothing else is pending: no third broadcast may come
        await cast.aclose()
        return times

    times = asyncio.run(main())
    assert len(times) == 2 and times[1] - times[0] >= 0.2 - 1e-3


def test_the_interval_grows_with_the_audience() -> None:
    audience = [10]

    async def nothing() -> None:
        return None

    cast = StatusCast(nothing, audience=lambda: audience[0])
    assert cast.interval == STATUS_INTERVAL_S
    audience[0] = 4 * STATUS_RATE
    assert cast.interval == 4.0  # status messages a second stay at STATUS_RATE on average
    audience[0] = 0
    assert cast.interval == STATUS_INTERVAL_S
