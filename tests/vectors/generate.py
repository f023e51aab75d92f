"""Generate tests/vectors/protocol_v<N>.json, the wire-format test vectors (docs/protocol.md).

    python tests/vectors/generate.py           rewrite the file from what the code produces
    python tests/vectors/generate.py --check   exit 1 if the committed file differs

Valid vectors are built as Python messages and encoded with `disco.protocol.encode`; decode-only
and invalid vectors are frames written by hand. Every vector is checked against the real codec
before it is written, so the file can only hold what the code actually does.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import typing
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).parent))  # sibling modules, as a script or loaded by path
from jsontext import dump, write_or_check

from disco.errors import ProtocolError, VersionError
from disco.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    ErrorMessage,
    Hello,
    Leave,
    Metrics,
    ModelUpdate,
    RoundResult,
    Status,
    UpdateAck,
    Welcome,
    decode,
    encode,
)
from disco.protocol.peers import (
    Combine,
    DigestReport,
    Exchange,
    ModelRequest,
    PeerAck,
    PeerInfo,
    PeerModel,
    PeerUpdate,
    Ready,
    Received,
    Resync,
    RoundPlan,
    Signal,
)
from disco.protocol.secure import (
    PeerMasked,
    SecureAbort,
    SecureCommitment,
    SecureEnvelope,
    SecureInbox,
    SecureInput,
    SecureKeys,
    SecureMember,
    SecureReveal,
    SecureRevealed,
    SecureReveals,
    SecureSetup,
    SecureShare,
    SecureShares,
    SecureUnmask,
)
from disco.weights import Weights

PATH = Path(__file__).with_name(f"protocol_v{PROTOCOL_VERSION}.json")


# -- building blocks ---------------------------------------------------------------------------
def _bits(*patterns: int) -> np.ndarray:
    """float32 values chosen by their IEEE-754 bit patterns."""
    return np.array(patterns, dtype="<u4").view("<f4")


def _frame(obj: dict[str, Any]) -> bytes:
    """A hand-made frame (keys kept in the given order)."""
    return msgpack.packb(obj, use_bin_type=True)


def _wire_weights(names: list[Any], shapes: list[Any], values: list[float]) -> dict[str, Any]:
    return {"data": np.asarray(values, "<f4").tobytes(), "names": names, "shapes": shapes}


SMALL = Weights({"dense.kernel": [[0.5, -1.25, 2.0], [0.0, 1.0, -0.375]], "dense.bias": [0.25]})
SCALAR_AND_EMPTY = Weights(
    [
        ("scale", np.float32(-2.5)),  # shape [] : one value
        ("empty", np.zeros(0, "<f4")),  # shape [0] : no value
        ("block", np.zeros((2, 0, 3), "<f4")),  # zero-size, rank 3
        ("tail", [1.5, -0.5]),
    ]
)
EXTREMES = Weights(
    {
        "big": [2.0**127, -(2.0**127), 3.4028234663852886e38, -3.4028234663852886e38],
        "small": [2.0**-126, -(2.0**-149), float(np.float32(1e-3)), -7.0],
        "cube": np.arange(-12, 12, dtype="<f4").reshape(2, 3, 4) / 8,
    }
)
BY_BITS = Weights(
    {
        "inexact": _bits(0x3DCCCCCD, 0x3EAAAAAB, 0xBF4CCCCD),  # nearest float32 to 0.1, 1/3, -0.8
        "edges": _bits(0x00000001, 0x807FFFFF, 0x80000000, 0x7F7FFFFF),  # subnormals, -0.0, max
    }
)
NON_FINITE = Weights({"w": _bits(0x7F800000, 0xFF800000, 0x7FC00000, 0x3F800000)})
FULL_METRICS = Metrics(
    train_loss=0.6931471805599453, train_accuracy=0.8125, val_loss=0.1, val_accuracy=0.75
)


# -- valid vectors: encode(message) == hex and decode(hex) == message -------------------------
VALID: list[tuple[str, str, Any, bool]] = []


def valid(name: str, description: str, message: Any, by_bits: bool = False) -> None:
    """Add a valid vector; `by_bits` writes its weights as bit patterns."""
    VALID.append((name, description, message, by_bits))


valid(
    "hello_minimal",
    "Hello with only task_id: name and kind take their defaults and are still written",
    Hello(task_id="titanic"),
)
valid(
    "hello_browser_non_ascii",
    "Hello from a browser, non-ASCII task id and display name (UTF-8 str)",
    Hello(task_id="mnist-ü", name="Zoë 🚀 データ", kind="browser"),
)
valid(
    "hello_with_participant_key",
    "Hello carrying a participant_key: reconnecting with it makes it the same participant",
    Hello(task_id="titanic", name="c1", participant_key="Qx7-_rT3kLmN0pQaZ9yW2vB4cD6eF8gH"),
)
valid(
    "update_minimal",
    "ModelUpdate for round 0 without metrics (written as an empty map)",
    ModelUpdate(round=0, num_samples=1, weights=Weights({"w": [0.5, -1.25]})),
)
valid(
    "update_full",
    "ModelUpdate with every metric, a 2-D kernel, a round above 2^32 and num_samples 2^40",
    ModelUpdate(round=4_294_967_296, num_samples=2**40, weights=SMALL, metrics=FULL_METRICS),
)
valid(
    "update_some_metrics",
    "ModelUpdate with only some metrics: absent metrics are left out of the metrics map",
    ModelUpdate(
        round=200,
        num_samples=70_000,
        weights=SMALL,
        metrics=Metrics(train_loss=1.5e-7, val_accuracy=0.5),
    ),
)
valid(
    "update_scalar_and_empty_tensors",
    "a scalar tensor (shape []) and zero-size tensors (shapes [0] and [2, 0, 3])",
    ModelUpdate(round=3, num_samples=12, weights=SCALAR_AND_EMPTY),
)
valid(
    "update_extreme_values",
    "big, negative and subnormal float32 values; big, negative and subnormal float64 metrics",
    ModelUpdate(
        round=65_536,
        num_samples=65_535,
        weights=EXTREMES,
        metrics=Metrics(
            train_loss=1.7976931348623157e308,
            train_accuracy=-2.5e-310,
            val_loss=-123.456,
            val_accuracy=5e-324,
        ),
    ),
)
valid(
    "update_values_by_bits",
    "float32 values given by bit pattern: nearest to 0.1, 1/3, -0.8; subnormals, -0.0, max",
    ModelUpdate(round=1, num_samples=5, weights=BY_BITS),
    by_bits=True,
)
valid(
    "update_non_finite_weights",
    "inf, -inf and NaN travel unchanged; a server refuses such an update with not_finite",
    ModelUpdate(round=1, num_samples=5, weights=NON_FINITE),
    by_bits=True,
)
valid("leave", "Leave has no field but type", Leave())
valid(
    "welcome_waiting",
    "Welcome for the first participant of a fresh task",
    Welcome(
        client_id="c-0001",
        task_id="titanic",
        round=0,
        weights=SMALL,
        participants=1,
        min_participants=2,
        state="waiting_for_participants",
    ),
)
valid(
    "welcome_enough",
    "Welcome in a later round, non-ASCII ids, a model with scalar and zero-size tensors",
    Welcome(
        client_id="клиент-7",
        task_id="mnist-ü",
        round=17,
        weights=SCALAR_AND_EMPTY,
        participants=3,
        min_participants=2,
        state="enough_participants",
    ),
)
valid(
    "status",
    "Status broadcast after an accepted update",
    Status(round=4, participants=2, min_participants=2, reported=1, state="enough_participants"),
)
valid(
    "status_waiting",
    "Status after a leave left too few participants",
    Status(
        round=0, participants=0, min_participants=1, reported=0, state="waiting_for_participants"
    ),
)
valid("ack", "UpdateAck for round 4", UpdateAck(round=4, reported=2, participants=3))
valid(
    "result_minimal",
    "RoundResult without metrics (written as an empty map)",
    RoundResult(round=1, weights=SMALL, contributors=1, num_samples=1),
)
valid(
    "result_full",
    "RoundResult with averaged metrics",
    RoundResult(
        round=300,
        weights=SMALL,
        contributors=12,
        num_samples=1_000_001,
        metrics=Metrics(
            train_loss=0.25390625, train_accuracy=0.9, val_loss=0.3, val_accuracy=0.875
        ),
    ),
)
valid(
    "error_with_round",
    "ErrorMessage with a round (a stale update)",
    ErrorMessage(code="stale", message="update for round 2 arrived after round 2 closed", round=2),
)
valid(
    "error_without_round",
    "ErrorMessage without round: the key is left out",
    ErrorMessage(code="malformed", message="frame is not valid msgpack"),
)
valid(
    "error_non_ascii",
    "ErrorMessage with a non-ASCII message and round 0",
    ErrorMessage(code="unknown_task", message="tâche « x » inconnue — 未知", round=0),
)

# -- version 2: capabilities, decentralized sessions, peer frames ------------------------------
DIGEST_A = SMALL.digest()
DIGEST_B = SCALAR_AND_EMPTY.digest()
valid(
    "hello_with_capabilities",
    "Hello announcing capabilities; a name the server does not know is allowed and ignored",
    Hello(task_id="p2p", name="lab-3", capabilities=["decentralized", "zz_future_feature"]),
)
valid(
    "hello_with_invitation",
    "Hello presenting an invitation token, as a participant of a private instance does",
    Hello(
        task_id="mnist",
        name="ward-4",
        kind="browser",
        invitation="dinv.abcdefgh23.Qx7-_rT3kLmN0pQaZ9yW2vB4cD6eF8gHj1k2L3m4N5o",
    ),
)
valid(
    "welcome_decentralized",
    "Welcome of a decentralized session: no weights (models travel between peers only)",
    Welcome(
        client_id="p-0123456789abcdef",
        task_id="p2p",
        round=3,
        participants=4,
        min_participants=3,
        state="enough_participants",
        capabilities=["decentralized"],
    ),
)
valid(
    "plan_all_to_all",
    "RoundPlan of an all-to-all round of three peers",
    RoundPlan(
        round=0,
        peers=[
            PeerInfo(id="p-aaaaaaaaaaaaaaaa", name="Ann", kind="browser", weight=0.25),
            PeerInfo(id="p-bbbbbbbbbbbbbbbb", weight=0.25),
        ],
        members=3,
        topology="all_to_all",
        self_weight=0.5,
        digest=DIGEST_A,
        connect_s=30.0,
        exchange_s=120.5,
    ),
)
valid(
    "plan_late_joiner",
    "RoundPlan of a sparse round for a peer that must first fetch the round's model",
    RoundPlan(
        round=7,
        peers=[PeerInfo(id="p-cccccccccccccccc", name="Zoë", weight=0.2)],
        members=20,
        topology="sparse",
        self_weight=0.8,
        digest=DIGEST_B,
        model_from="p-cccccccccccccccc",
        connect_s=15.25,
        exchange_s=60.0,
    ),
)
valid(
    "signal_offer",
    "Signal carrying an SDP offer (to its recipient, or from its sender)",
    Signal(peer="p-aaaaaaaaaaaaaaaa", kind="offer", data="v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"),
)
valid(
    "signal_candidate",
    "Signal carrying an ICE candidate as JSON text",
    Signal(peer="p-bbbbbbbbbbbbbbbb", kind="candidate", data='{"candidate":"","sdpMid":"0"}'),
)
valid(
    "ready",
    "Ready: the channels this peer has open",
    Ready(round=2, connected=["p-aaaaaaaaaaaaaaaa", "p-bbbbbbbbbbbbbbbb"]),
)
valid("ready_alone", "Ready with no channel open", Ready(round=2, connected=[]))
valid(
    "exchange",
    "Exchange: the barrier is passed",
    Exchange(round=2, peers=["p-aaaaaaaaaaaaaaaa", "p-bbbbbbbbbbbbbbbb"]),
)
valid("received", "Received: whose updates arrived", Received(round=2, peers=["p-aaaa"]))
valid("combine", "Combine exactly these updates", Combine(round=2, peers=["p-aaaa", "p-bbbb"]))
valid(
    "digest",
    "DigestReport of the model a peer ends round 2 with",
    DigestReport(round=2, digest=DIGEST_A),
)
valid(
    "resync",
    "Resync: fetch the model that opens round 3 from another peer",
    Resync(round=3, digest=DIGEST_A, peer="p-aaaa"),
)
valid(
    "peer_update",
    "PeerUpdate between two peers, with the SHA-256 digest of its weights",
    PeerUpdate(round=2, num_samples=600, weights=SMALL, digest=DIGEST_A, metrics=FULL_METRICS),
)
valid("peer_ack", "PeerAck of an update that arrived whole", PeerAck(round=2, digest=DIGEST_A))
valid("model_request", "ModelRequest for the model that opens round 3", ModelRequest(round=3))
valid(
    "peer_model",
    "PeerModel answering a ModelRequest",
    PeerModel(round=3, weights=SCALAR_AND_EMPTY, digest=DIGEST_B),
)

for _code in typing.get_args(ErrorCode):
    if _code not in ("stale", "malformed", "unknown_task"):
        valid(
            f"error_code_{_code}",
            f"ErrorMessage with code {_code!r}",
            ErrorMessage(code=_code, message=_code),
        )

# -- decode-only vectors: other valid encodings of a message; decode(hex) == message ----------
_W = _wire_weights(["w"], [[2]], [0.5, -1.25])
_W_VALUE = Weights({"w": [0.5, -1.25]})
_W_PACKED = msgpack.packb(_W, use_bin_type=True)
DECODE_ONLY: list[tuple[str, str, bytes, Any]] = [
    (
        "integer_metrics",
        "integers where floats are expected (JavaScript encoders write 1.0 as 1)",
        _frame(
            {
                "metrics": {"train_loss": 1, "val_accuracy": 0, "val_loss": -2},
                "num_samples": 4,
                "round": 0,
                "type": "update",
                "v": PROTOCOL_VERSION,
                "weights": _W,
            }
        ),
        ModelUpdate(
            round=0,
            num_samples=4,
            weights=_W_VALUE,
            metrics=Metrics(train_loss=1.0, val_loss=-2.0, val_accuracy=0.0),
        ),
    ),
    (
        "float32_metric",
        "a metric written as msgpack float32 (0xca 3f400000 = 0.75)",
        b"\x86\xa7metrics\x81\xaatrain_loss\xca\x3f\x40\x00\x00\xabnum_samples\x04"
        b"\xa5round\x00\xa4type\xa6update\xa1v\x02\xa7weights" + _W_PACKED,
        ModelUpdate(round=0, num_samples=4, weights=_W_VALUE, metrics=Metrics(train_loss=0.75)),
    ),
    (
        "metrics_absent",
        "an update without the metrics key has no metrics",
        _frame(
            {"num_samples": 4, "round": 0, "type": "update", "v": PROTOCOL_VERSION, "weights": _W}
        ),
        ModelUpdate(round=0, num_samples=4, weights=_W_VALUE),
    ),
    (
        "unsorted_keys",
        "keys in any order; absent name and kind take their defaults",
        _frame({"v": PROTOCOL_VERSION, "task_id": "titanic", "type": "hello"}),
        Hello(task_id="titanic"),
    ),
    (
        "wide_integers",
        "integers in wider encodings than needed (uint32, int8, uint16, uint64), keys unsorted",
        b"\x85\xa5round\xce\x00\x00\x00\x07\xacparticipants\xd0\x03\xa8reported\xcd\x00\x01"
        b"\xa4type\xa3ack\xa1v\xcf\x00\x00\x00\x00\x00\x00\x00\x02",
        UpdateAck(round=7, reported=1, participants=3),
    ),
    (
        "nil_round",
        "an explicit nil for an optional field means the same as leaving it out",
        _frame(
            {
                "code": "malformed",
                "message": "m",
                "round": None,
                "type": "error",
                "v": PROTOCOL_VERSION,
            }
        ),
        ErrorMessage(code="malformed", message="m"),
    ),
]

# -- capability secure_aggregation (docs/protocol.md §19) ---------------------------------------
_KEY_C = bytes([4]) + bytes(range(64))  # 65 bytes shaped like an uncompressed point
_KEY_S = bytes([4]) + bytes(range(64, 128))
valid(
    "secure_keys",
    "SecureKeys: two 65-byte public keys as msgpack bin",
    SecureKeys(round=2, c_public=_KEY_C, s_public=_KEY_S),
)
valid(
    "secure_setup",
    "SecureSetup: the roster in order of id, threshold and quantisation",
    SecureSetup(
        round=2,
        members=[
            SecureMember(id="p-a", position=1, c_public=_KEY_C, s_public=_KEY_S),
            SecureMember(id="p-b", position=2, c_public=_KEY_S, s_public=_KEY_C),
        ],
        threshold=2,
        clip=1.0,
        weight_cap=1024,
        bits=17,
        length=4,
    ),
)
valid(
    "secure_shares",
    "SecureShares: a 32-byte commitment and one 82-byte envelope per other member",
    SecureShares(
        round=2,
        commitment=bytes(range(32)),
        envelopes=[SecureEnvelope(peer="p-b", data=bytes(range(82)))],
    ),
)
valid(
    "secure_inbox",
    "SecureInbox: who shared, and the envelopes addressed to this member",
    SecureInbox(
        round=2,
        senders=["p-a", "p-b", "p-c"],
        envelopes=[
            SecureEnvelope(peer="p-a", data=bytes(82)),
            SecureEnvelope(peer="p-c", data=bytes([255]) * 82),
        ],
    ),
)
valid(
    "secure_input",
    "SecureInput: masked words, uint32 little-endian",
    SecureInput(round=2, words=bytes.fromhex("01000000ffffffff00000080")),
)
valid(
    "secure_unmask",
    "SecureUnmask: survivors and dropped members",
    SecureUnmask(round=2, survivors=["p-a", "p-c"], dropped=["p-b"]),
)
valid(
    "secure_reveal",
    "SecureReveal: a self share per survivor and a key share per dropped member",
    SecureReveal(
        round=2,
        shares=[
            SecureShare(of="p-a", kind="self", share=bytes(33)),
            SecureShare(of="p-b", kind="key", share=bytes(range(33))),
        ],
    ),
)
valid(
    "secure_reveals",
    "SecureReveals: the split, the survivors' commitments and the threshold's shares, relayed",
    SecureReveals(
        round=2,
        survivors=["p-a", "p-c"],
        dropped=["p-b"],
        commitments=[
            SecureCommitment(peer="p-a", commitment=bytes(range(32))),
            SecureCommitment(peer="p-c", commitment=bytes([7]) * 32),
        ],
        reveals=[
            SecureRevealed(
                peer="p-a",
                shares=[
                    SecureShare(of="p-a", kind="self", share=bytes(33)),
                    SecureShare(of="p-c", kind="self", share=bytes([1]) * 33),
                    SecureShare(of="p-b", kind="key", share=bytes(range(33))),
                ],
            )
        ],
    ),
)
valid(
    "peer_masked",
    "PeerMasked: a masked input between two peers, with the SHA-256 of its words",
    PeerMasked(
        round=2,
        words=bytes.fromhex("01000000ffffffff00000080"),
        digest=hashlib.sha256(bytes.fromhex("01000000ffffffff00000080")).hexdigest(),
    ),
)
valid(
    "secure_abort",
    "SecureAbort: the round ended without a result; the next opens with the same model",
    SecureAbort(round=2, reason="only 1 masked inputs arrived; unmasking needs 2 survivors"),
)

# -- invalid vectors: decode(hex) raises ProtocolError containing `error` ---------------------
_HELLO = {"kind": "python", "name": "", "task_id": "t", "type": "hello", "v": PROTOCOL_VERSION}
_UPDATE = {
    "metrics": {},
    "num_samples": 1,
    "round": 0,
    "type": "update",
    "v": PROTOCOL_VERSION,
    "weights": _W,
}
_STATUS = {"min_participants": 1, "participants": 1, "reported": 0, "round": 0}
_STATUS |= {"state": "enough_participants", "type": "status", "v": PROTOCOL_VERSION}
_RESULT = {"contributors": 1, "metrics": {}, "num_samples": 1, "round": 1}
_RESULT |= {"type": "result", "v": PROTOCOL_VERSION, "weights": _W}
_ERROR = {"code": "stale", "message": "m", "type": "error", "v": PROTOCOL_VERSION}
_GE = "Input should be greater than or equal to"
_PEER = {"id": "p-a", "kind": "python", "name": "", "weight": 0.5}
_PLAN = {"connect_s": 1.0, "exchange_s": 1.0, "members": 2, "peers": [_PEER], "round": 0}
_PLAN |= {"self_weight": 0.5, "topology": "all_to_all", "type": "plan", "v": PROTOCOL_VERSION}
_DIGEST = {"digest": "a" * 64, "round": 0, "type": "digest", "v": PROTOCOL_VERSION}
_SECURE_KEYS = {"c_public": b"\x04" * 65, "round": 0, "s_public": b"\x04" * 65}
_SECURE_KEYS |= {"type": "secure_keys", "v": PROTOCOL_VERSION}
_ABORT = {"reason": "r", "round": 0, "type": "secure_abort", "v": PROTOCOL_VERSION}
_MASKED = {"digest": "a" * 64, "round": 0, "type": "peer_masked", "v": PROTOCOL_VERSION}
_MASKED |= {"words": b"\x00" * 4}
_REVEALS = {"commitments": [], "dropped": [], "reveals": [], "round": 0, "survivors": []}
_REVEALS |= {"type": "secure_reveals", "v": PROTOCOL_VERSION}
_SIGNAL = {"data": "", "kind": "offer", "peer": "p-a", "type": "signal", "v": PROTOCOL_VERSION}
_EXCHANGE = {"peers": [], "round": 0, "type": "exchange", "v": PROTOCOL_VERSION}


def _with(base: dict[str, Any], **changes: Any) -> bytes:
    """`base` with fields changed (`...` removes one), keys sorted, as a frame."""
    obj = {**base, **changes}
    return _frame({k: v for k, v in sorted(obj.items()) if v is not ...})


def _weights(names: list[Any], shapes: list[Any], values: list[float]) -> bytes:
    return _with(_UPDATE, weights=_wire_weights(names, shapes, values))


INVALID: list[tuple[str, bytes, str]] = [
    ("not_msgpack", b"\xc1", "not valid msgpack"),
    ("empty_frame", b"", "not valid msgpack"),
    ("truncated", encode(Hello(task_id="titanic"))[:-3], "not valid msgpack"),
    ("trailing_bytes", encode(Leave()) + b"\x00", "not valid msgpack"),
    (
        "integer_key",
        _frame({1: "x", "type": "leave", "v": PROTOCOL_VERSION}),
        "not valid msgpack",
    ),
    ("not_a_map", _frame(["hello", 1]), "must be a msgpack map"),
    ("missing_version", _with(_HELLO, v=...), "protocol version None is not supported"),
    ("version_1", _with(_HELLO, v=1), "protocol version 1 is not supported"),
    ("future_version", _with(_HELLO, v=3), "protocol version 3 is not supported"),
    ("missing_type", _with(_HELLO, type=...), "Unable to extract tag"),
    ("unknown_type", _with(_HELLO, type="join"), "does not match any of the expected tags"),
    ("missing_field", _with(_HELLO, task_id=...), "task_id: Field required"),
    ("extra_field", _with(_HELLO, room="lobby"), "Extra inputs are not permitted"),
    ("empty_task_id", _with(_HELLO, task_id=""), "at least 1 character"),
    ("long_name", _with(_HELLO, name="é" * 101), "at most 100 characters"),
    ("unknown_kind", _with(_HELLO, kind="android"), "kind: Input should be 'python' or 'browser'"),
    ("short_participant_key", _with(_HELLO, participant_key="k" * 15), "at least 16 characters"),
    ("long_participant_key", _with(_HELLO, participant_key="k" * 129), "at most 128 characters"),
    (
        "participant_key_of_8_astral_characters",
        _with(_HELLO, participant_key="🔑" * 8),  # 16 UTF-16 units, but 8 code points
        "at least 16 characters",
    ),
    ("participant_key_not_a_string", _with(_HELLO, participant_key=12345), "valid string"),
    ("negative_round", _with(_UPDATE, round=-1), f"round: {_GE} 0"),
    ("num_samples_zero", _with(_UPDATE, num_samples=0), f"num_samples: {_GE} 1"),
    ("num_samples_too_big", _with(_UPDATE, num_samples=2**40 + 1), "less than or equal to"),
    ("nan_metric", _with(_UPDATE, metrics={"val_loss": math.nan}), "metrics must be finite"),
    ("inf_metric", _with(_UPDATE, metrics={"train_loss": -math.inf}), "metrics must be finite"),
    ("unknown_metric", _with(_UPDATE, metrics={"f1": 0.5}), "Extra inputs are not permitted"),
    (
        "weights_length_mismatch",
        _weights(["w"], [[2]], [0.5]),
        "need 8 bytes of data, the frame has 4",
    ),
    ("weights_negative_dimension", _weights(["w"], [[-2]], []), "has invalid shape"),
    ("weights_rank_9", _weights(["w"], [[1] * 9], [0.5]), "bad name or shape"),
    ("weights_count_mismatch", _weights(["a", "b"], [[1]], [0.5]), "2 names but 1 shapes"),
    ("weights_duplicate_name", _weights(["w", "w"], [[1], [1]], [1, 2]), "duplicate weight name"),
    ("weights_empty_name", _weights([""], [[1]], [0.5]), "names must be non-empty strings"),
    (
        "weights_missing_key",
        _with(_UPDATE, weights={"data": b"", "names": []}),
        "exactly 'data', 'names' and 'shapes'",
    ),
    (
        "weights_data_not_binary",
        _with(_UPDATE, weights={"data": "", "names": [], "shapes": []}),
        "'data' binary",
    ),
    ("unknown_error_code", _with(_ERROR, code="teapot"), "code: Input should be 'malformed'"),
    ("unknown_state", _with(_STATUS, state="full"), "state: Input should be"),
    ("min_participants_zero", _with(_STATUS, min_participants=0), f"min_participants: {_GE} 1"),
    ("result_round_zero", _with(_RESULT, round=0), f"round: {_GE} 1"),
    ("capability_upper_case", _with(_HELLO, capabilities=["Decentralized"]), "match pattern"),
    ("capability_repeated", _with(_HELLO, capabilities=["a", "a"]), "must be distinct"),
    ("capabilities_33", _with(_HELLO, capabilities=[f"c{i}" for i in range(33)]), "at most 32"),
    ("capabilities_not_a_list", _with(_HELLO, capabilities="decentralized"), "valid list"),
    ("plan_repeated_peer", _with(_PLAN, peers=[_PEER, _PEER]), "must be distinct"),
    ("plan_weight_above_1", _with(_PLAN, peers=[{**_PEER, "weight": 1.5}]), "less than or equal"),
    ("plan_no_members", _with(_PLAN, members=0), f"members: {_GE} 1"),
    ("plan_unknown_topology", _with(_PLAN, topology="ring"), "topology: Input should be"),
    ("digest_not_hex", _with(_DIGEST, digest="Z" * 64), "match pattern"),
    ("digest_short", _with(_DIGEST, digest="a" * 63), "match pattern"),
    ("signal_unknown_kind", _with(_SIGNAL, kind="bye"), "kind: Input should be"),
    ("signal_too_long", _with(_SIGNAL, data="x" * 65_537), "at most 65536 characters"),
    ("exchange_repeated_peer", _with(_EXCHANGE, peers=["a", "a"]), "must be distinct"),
    ("secure_key_short", _with(_SECURE_KEYS, c_public=b"\x04" * 64), "at least 65 bytes"),
    ("secure_key_text", _with(_SECURE_KEYS, s_public="04" * 65), "s_public"),
    ("secure_abort_reason_long", _with(_ABORT, reason="x" * 1001), "at most 1000 characters"),
    ("peer_masked_no_words", _with(_MASKED, words=b""), "at least 4 bytes"),
    ("peer_masked_digest_upper", _with(_MASKED, digest="A" * 64), "match pattern"),
    (
        "secure_reveals_repeated_revealer",
        _with(_REVEALS, reveals=[{"peer": "p-a", "shares": []}] * 2),
        "must be distinct",
    ),
    (
        "secure_reveals_short_commitment",
        _with(_REVEALS, commitments=[{"commitment": b"\x00" * 31, "peer": "p-a"}]),
        "at least 32 bytes",
    ),
]


# -- JSON form ---------------------------------------------------------------------------------
def _number(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{x} has no JSON form; give the tensor by bits")
    return x


def weights_json(weights: Weights, by_bits: bool) -> dict[str, Any]:
    """The language-neutral JSON form of a `Weights` value."""
    out: dict[str, Any] = {
        "names": list(weights),
        "shapes": [list(s) for s in weights.shapes.values()],
    }
    if by_bits:
        out["bits"] = [
            [f"{b:08x}" for b in a.ravel().view("<u4").tolist()] for a in weights.values()
        ]
    else:
        out["values"] = [[_number(x) for x in a.ravel().tolist()] for a in weights.values()]
    return out


def message_json(message: Any, by_bits: bool = False) -> dict[str, Any]:
    """The JSON form of a message: `type` and the fields that were given explicitly."""
    out: dict[str, Any] = {"type": message.type}
    for name in sorted(message.model_fields_set - {"type"}):
        value = getattr(message, name)
        if isinstance(value, Weights):
            value = weights_json(value, by_bits)
        elif isinstance(value, Metrics):
            value = {k: _number(v) for k, v in value.model_dump().items() if v is not None}
        else:
            value = _plain(value)
        if value is not None:
            out[name] = value
    return out


def _plain(value: Any) -> Any:
    """Binary as ``{"bin": hex}``, nested message parts as maps, lists item by item."""
    if isinstance(value, bytes):
        return {"bin": value.hex()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_weights_json(weights: Weights, by_bits: bool) -> None:
    if by_bits:
        return
    for a in weights.values():  # a decimal in "values" must be exactly one float32
        for x in a.ravel().tolist():
            assert float(np.float32(x)) == x


def _same(a: Any, b: Any) -> bool:
    """Messages equal, weights compared bit for bit (NaN included)."""
    if type(a) is not type(b):
        return False
    for name in type(a).model_fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, Weights):
            if x.shapes != y.shapes or x.flatten().tobytes() != y.flatten().tobytes():
                return False
        elif x != y:
            return False
    return True


def build() -> dict[str, Any]:
    """Every vector, checked against the codec."""
    valid = []
    for name, description, message, by_bits in VALID:
        frame = encode(message)
        assert _same(decode(frame), message), name
        vector: dict[str, Any] = {
            "name": name,
            "description": description,
            "message": message_json(message, by_bits),
            "hex": frame.hex(),
        }
        if isinstance(getattr(message, "weights", None), Weights):
            _check_weights_json(message.weights, by_bits)
            vector["digest"] = message.weights.digest()
        valid.append(vector)
    decode_only = []
    for name, description, frame, message in DECODE_ONLY:
        assert _same(decode(frame), message) and encode(message) != frame, name
        decode_only.append(
            {
                "name": name,
                "description": description,
                "message": message_json(message),
                "hex": frame.hex(),
            }
        )
    invalid = []
    for name, frame, error in INVALID:
        try:
            decode(frame)
        except ProtocolError as exc:
            assert error in str(exc), (name, str(exc))
            code = "version" if isinstance(exc, VersionError) else "malformed"
        else:
            raise AssertionError(f"invalid vector {name} decodes")
        invalid.append({"name": name, "hex": frame.hex(), "error": error, "code": code})
    names = [v["name"] for v in valid + decode_only + invalid]
    assert len(names) == len(set(names)), "vector names must be unique"
    return {
        "protocol_version": PROTOCOL_VERSION,
        "comment": "generated by tests/vectors/generate.py; format in docs/protocol.md",
        "valid": valid,
        "decode_only": decode_only,
        "invalid": invalid,
    }


def render() -> str:
    """The file's exact text."""
    text = dump(build()) + "\n"
    assert json.loads(text) == build()
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite the vectors file, or with --check compare it with what the code produces."""
    return write_or_check(PATH, render, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
