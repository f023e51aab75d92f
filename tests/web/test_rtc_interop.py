"""A browser and a Python peer on one WebRTC data channel: the same frames, fragments and close.

The browser side is web/src/core/transport/rtc.ts itself, bundled for the page with the web
app's own build tool; the Python side is disco.transport.rtc on aiortc. Both stay on loopback:
Chromium runs with --allow-loopback-in-peer-connection, and aiortc's ICE is given 127.0.0.1 (it
skips loopback otherwise). No STUN server on either side.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aioice.ice
import pytest

from disco.transport import ChannelClosed
from disco.transport.rtc import MAX_MESSAGE, RtcLink

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture(scope="module")
def rtc_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """web/src/core/transport/rtc.ts as one script exposing `DiscoRtc` (a library build)."""
    out = tmp_path_factory.mktemp("rtc-bundle")
    config = out / "vite.config.mjs"
    entry = ROOT / "web" / "src" / "core" / "transport" / "rtc.ts"
    config.write_text(
        "export default { logLevel: 'error', build: { lib: { entry: "
        f"{str(entry)!r}, name: 'DiscoRtc', formats: ['iife'], fileName: () => 'rtc.js' }}, "
        f"outDir: {str(out / 'dist')!r}, emptyOutDir: true, minify: false }} }};\n"
    )
    done = subprocess.run(
        ["npx", "vite", "build", "--config", str(config)],
        cwd=ROOT / "web",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"bundling rtc.ts failed (run `make setup`?):\n{done.stderr}"
    return out / "dist" / "rtc.js"


class Loop:
    """An asyncio loop in a thread, for aiortc beside Playwright's synchronous API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loop]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    running = Loop()
    yield running
    running.stop()


ANSWER = """async (offer) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.peer = pc;
  window.channelReady = new Promise((resolve) => {
    pc.ondatachannel = (event) => {
      const dc = event.channel;
      const wrap = () => resolve(new DiscoRtc.RtcChannel(dc, pc));
      if (dc.readyState === "open") wrap(); else dc.addEventListener("open", wrap, { once: true });
    };
  });
  await pc.setRemoteDescription({ type: "offer", sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  return pc.localDescription.sdp;
}"""

ECHO = """async () => {
  const channel = await window.channelReady;
  window.channel = channel;
  const sizes = [];
  for (let i = 0; i < 3; i++) {
    const frame = await channel.receive(20000);
    sizes.push(frame.length);
    await channel.send(frame.slice().reverse(), 20000);
  }
  await channel.close(4001, "done: ünïcode");
  return { sizes, messageSize: channel.messageSize };
}"""


def test_a_browser_and_a_python_peer_exchange_frames_and_the_close(
    browser: Any, rtc_bundle: Path, loop: Loop
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_script_tag(path=str(rtc_bundle))
    python = RtcLink()
    try:
        offer = loop.run(python.offer())
        answer = page.evaluate(ANSWER, offer)
        loop.run(python.accept(answer))
        channel = loop.run(python.channel(timeout=20))
        big = hashlib.sha256(b"model").digest() * (3 * MAX_MESSAGE // 32 + 5)  # 4 messages
        frames = [b"hello from python", big, b""]
        page.evaluate(f"() => {{ window.echoed = ({ECHO})(); }}")  # each frame back, reversed

        async def exchange() -> list[bytes]:
            for frame in frames:
                await channel.send(frame, timeout=20)
            return [await channel.receive(timeout=20) for _ in frames]

        assert loop.run(exchange()) == [f[::-1] for f in frames]
        seen = page.evaluate("() => window.echoed")
        assert seen == {"sizes": [len(f) for f in frames], "messageSize": MAX_MESSAGE}

        async def closed_by_browser() -> ChannelClosed:
            with pytest.raises(ChannelClosed) as why:
                await channel.receive(timeout=20)
            return why.value

        why = loop.run(closed_by_browser())
        assert why.code == 4001 and "done: ünïcode" in str(why)
        assert errors == []
    finally:
        loop.run(python.close())
        page.close()
