"""Writes tests/vectors/rtc_fragments.json: how frames travel on a WebRTC data channel.

Both implementations read the file (tests/transport/test_rtc_vectors.py, web/tests/rtc.test.ts):
the messages a frame is cut into for a message size, the close notices, and the messages a
receiver refuses with the close code it reports. Run from the repository root:

    .venv/bin/python tests/vectors/rtc_fragments.py
"""

from __future__ import annotations

import json
from pathlib import Path

from disco.transport.rtc import close_notice, fragments

FRAMES = [
    ("empty frame: one empty last fragment", b"", 4),
    ("one byte", b"a", 4),
    ("exactly one payload", b"abc", 4),
    ("one byte more than a payload", b"abcd", 4),
    ("three messages", b"abcdefg", 4),
    ("binary bytes", bytes(range(256)), 100),
    ("the smallest message size", b"xyz", 2),
]
NOTICES = [
    ("normal close, no reason", 1000, "", 64),
    ("application code and reason", 4001, "left the round", 64),
    ("UTF-8 reason", 4404, "tâche inconnue", 64),
    ("reason cut to whole characters", 4001, "ééé", 8),
]
REFUSED = [
    ("an empty message", "", 1003),
    ("an unknown kind", "03616263", 1003),
    ("a close notice without a code", "0203", 1003),
]


def main() -> None:
    doc = {
        "about": (
            "Frames on a WebRTC data channel (src/disco/transport/rtc.py): each message is one "
            "header byte (0x00 fragment, 0x01 last fragment, 0x02 close notice: uint16 BE code, "
            "UTF-8 reason) and at most message_size - 1 payload bytes."
        ),
        "frames": [
            {
                "name": name,
                "message_size": size,
                "frame": frame.hex(),
                "messages": [m.hex() for m in fragments(frame, size)],
            }
            for name, frame, size in FRAMES
        ],
        "close_notices": [
            {
                "name": name,
                "code": code,
                "reason": reason,
                "message_size": size,
                "message": close_notice(code, reason, size).hex(),
            }
            for name, code, reason, size in NOTICES
        ],
        "refused": [{"name": n, "message": m, "close_code": c} for n, m, c in REFUSED],
        "text_message_close_code": 1003,
        "over_the_limit_close_code": 1009,
    }
    out = Path(__file__).with_name("rtc_fragments.json")
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
