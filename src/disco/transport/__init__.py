"""Transports: ordered, reliable, message-oriented links to one peer, behind one `Channel`.

The round logic of the clients runs on `Channel`, whatever carries the frames: a WebSocket to the
server (`websocket.py`), an in-process pair for tests (`memory.py`), a WebRTC data channel
between peers (`rtc.py`, fragmenting frames to the data channel's message size). Mirrors
`web/src/core/transport/`.
"""

from disco.transport.channel import Channel, ChannelClosed
from disco.transport.memory import memory_pair
from disco.transport.rtc import RtcChannel
from disco.transport.websocket import WebSocketChannel

__all__ = ["Channel", "ChannelClosed", "RtcChannel", "WebSocketChannel", "memory_pair"]
