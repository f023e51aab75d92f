"""Token buckets per address: a minute's burst, a steady refill, a bounded table."""

from __future__ import annotations

import pytest

from disco.server.limits import RateLimiter, rate_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_minutes_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert [limiter.take("a") for _ in range(60)] == [0.0] * 60
    assert limiter.take("a") == pytest.approx(1.0)  # one token a second
    assert limiter.take("b") == 0.0  # another address has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 3600  # a quiet hour refills to a minute's worth, no more
    assert [limiter.take("a") for _ in range(60)] == [0.0] * 60
    assert limiter.take("a") > 0


def test_refused_attempts_do_not_dig_deeper() -> None:
    clock = Clock()
    limiter = RateLimiter(6, clock=clock)
    for _ in range(6):
        limiter.take("a")
    for _ in range(1000):
        assert limiter.take("a") == pytest.approx(10.0)  # a refusal costs nothing
    clock.now += 10
    assert limiter.take("a") == 0.0


def test_the_table_stays_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, max_keys=100)
    for i in range(1000):
        limiter.take(f"address-{i}")
        clock.now += 0.01
        assert len(limiter) <= 100


def test_a_full_table_forgets_quiet_addresses_before_busy_ones() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, max_keys=10)
    for _ in range(10):
        limiter.take("busy")  # the oldest entry, its minute used up
    for i in range(9):
        limiter.take(f"quiet-{i}")
    clock.now += 6  # the quiet ones have refilled (one token in 6 s); busy holds one token
    limiter.take("newcomer")  # 11 addresses: one must go, and it is a quiet one
    assert len(limiter) <= 10
    assert limiter.take("busy") == 0.0
    assert limiter.take("busy") > 0  # remembered: a forgotten address would have 10 again


def test_ipv6_addresses_share_their_64() -> None:
    assert rate_key("203.0.113.7") == "203.0.113.7"
    assert (
        rate_key("2001:db8:1:2:aaaa::1") == rate_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    assert rate_key("unknown") == "unknown"
