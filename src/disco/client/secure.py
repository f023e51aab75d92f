"""A federated participant's round under secure aggregation (docs/protocol.md §19).

The round's four phases (docs/secure_aggregation.md §10) as the participant lives them, on the
same connection and with the same update pipeline as a plain round:

1. as the round opens, fresh keys go to the server (`SecureKeys`) and training starts;
2. the roster (`SecureSetup`) is answered at once with this participant's shares, even while it
   trains (`SecureShares`);
3. with the envelopes addressed to it (`SecureInbox`) and its training done, the update goes
   through the pipeline (checks, privacy), its change from the round's model is quantised with
   the weight min(num_samples, weight cap) and sent masked (`SecureInput`);
4. asked to unmask (`SecureUnmask`), it reveals its shares (`SecureReveal`) and waits for the
   `RoundResult`, as any federated participant.

A roster fixed before its keys arrived, a refusal by the server, an envelope that does not open or
a request it must refuse (`SecureParticipant` says why) make it sit the round out and take part
from the next. Reconnecting to the same server before the roster is fixed, it sends fresh keys;
after, the server sends again what it still has to answer, and it answers with what it sent
before. A server that restarted (it said so: `ErrorMessage` ``restarting``, or close code 1012)
kept only the round and its model: the member drops the round's roster and everything it sent in
it, and starts the round's phases afresh with new keys and a new participant, so nothing of the
abandoned roster is ever answered again; the update, already through the pipeline (privacy noise
drawn once), is masked anew. Only if the member had been asked to unmask under the abandoned
roster — the server may then have read a sum with its update in it — it takes part in the new
roster without sending that update again (a second sum over other members would give it away),
and the round goes on without it. An aborted round
(`SecureAbort`) opens the next one with the same model. Its wait for the others is bounded by
``wait_for_others_s`` from the end of its training and again from its masked input, like a
plain update's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from disco.client.link import LinkClosed
from disco.client.update import PreparedUpdate, prepare_update
from disco.errors import SecureAggregationError, UpdateRejected
from disco.protocol import (
    ErrorMessage,
    RoundResult,
    SecureAbort,
    SecureEnvelope,
    SecureInbox,
    SecureInput,
    SecureKeys,
    SecureReveal,
    SecureSetup,
    SecureShare,
    SecureShares,
    SecureUnmask,
)
from disco.secure import quantize
from disco.secure.participant import SecureParticipant
from disco.secure.roster import Member, RoundSetup
from disco.task import PrivacyConfig
from disco.training import EpochMetrics
from disco.weights import Weights

if TYPE_CHECKING:
    from disco.client.federated import FederatedClient

__all__ = ["quantized_update", "quantized_words", "secure_round", "setup_of"]

_WHILE_TRAINING_S = 1.0
"""How often the round looks whether training ended, while it waits for messages."""

log = logging.getLogger("disco.client")


def setup_of(task_id: str, message: SecureSetup) -> RoundSetup:
    """The roster `message` carries, for the engine."""
    return RoundSetup(
        task_id=task_id,
        round=message.round,
        members=tuple(Member(m.id, m.position, m.c_public, m.s_public) for m in message.members),
        threshold=message.threshold,
        clip=message.clip,
        weight_cap=message.weight_cap,
        bits=message.bits,
        length=message.length,
    )


def _change(weights: Weights, trained: Weights) -> np.ndarray:
    """trained − weights, flat float32 in the model's order."""
    return np.concatenate(
        [(trained[n].astype(np.float32) - a).reshape(-1) for n, a in weights.items()]
    ).astype(np.float32)


async def secure_round(
    client: FederatedClient, r: int, weights: Weights, k: int, n: int
) -> tuple[int, Weights, list[EpochMetrics], bool]:
    """Take part in server round `r` (from `weights`) with secure aggregation; the round that
    opens next, its model, this round's training metrics, and whether the round combined
    anything. After an abort the next round opens with the same model (not combined)."""
    settings = client.task.training.secure_aggregation
    assert settings is not None and client.client_id is not None

    def fresh() -> SecureParticipant:
        assert client.client_id is not None and settings is not None
        return SecureParticipant(client.task.id, r, client.client_id, threshold=settings.threshold)

    me = fresh()
    await client._send(SecureKeys(round=r, c_public=me.keys()[0], s_public=me.keys()[1]))
    training = asyncio.ensure_future(client.train(r, weights, k))
    metrics: list[EpochMetrics] = []
    setup: RoundSetup | None = None
    sent_shares: SecureShares | None = None  # kept to answer again after a reconnect
    sent_input: SecureInput | None = None
    taking_part = True
    prepared: PreparedUpdate | None = None  # the update through the pipeline, made once a round
    restarts = client._restarts  # restart notices seen when the link was last (re)opened
    summed = False  # asked to unmask a sum with this update in it (the server may have read it)

    def sit_out(why: str) -> None:
        nonlocal taking_part
        if taking_part:
            log.warning(
                "your round %d of %d: %s; this round goes on without you, you take part from "
                "the next one",
                *(k, n, why),
            )
        taking_part = False

    # the wait for the others counts from the end of this participant's training (training is
    # never cut short), and again from its masked input, as a plain update's wait does
    give_up: float | None = None
    try:
        while True:
            if training.done() and not metrics:
                trained, metrics = training.result()
                client._trained = trained
            if training.done() and give_up is None:
                give_up = time.monotonic() + client.wait_for_others_s
            remaining = _WHILE_TRAINING_S if give_up is None else give_up - time.monotonic()
            if remaining <= 0:
                raise client._expired(n)
            try:
                message = await client._next(timeout=remaining)
            except TimeoutError:
                continue
            except LinkClosed as exc:
                if exc.fatal is not None:
                    raise UpdateRejected(f"{exc.fatal} ({exc})") from exc
                log.warning("connection lost (%s); reconnecting", exc)
                welcome = await client._join()
                restarted = exc.code == 1012 or client._restarts != restarts
                restarts = client._restarts
                if welcome.round > r:
                    assert welcome.weights is not None
                    return welcome.round, welcome.weights, await _metrics(training, metrics), True
                if restarted and setup is not None:
                    log.warning(
                        "your round %d of %d: the server restarted and lost the secure round; "
                        "it starts again with fresh keys",
                        *(k, n),
                    )
                if restarted:  # nothing of the abandoned roster is answered again
                    setup, sent_shares, sent_input, taking_part = None, None, None, True
                if setup is None:  # the roster is not fixed yet, or was lost: fresh keys
                    me = fresh()
                    keys = SecureKeys(round=r, c_public=me.keys()[0], s_public=me.keys()[1])
                    await client._send(keys)
                # else the same server sends again what this member still has to answer
                continue
            if isinstance(message, ErrorMessage) and message.code == "restarting":
                log.info("your round %d of %d: %s", k, n, message.message)
                continue  # the link closes next (1012): reconnect, then start the round afresh
            if isinstance(message, RoundResult) and message.round > r:
                return message.round, message.weights, await _metrics(training, metrics), True
            if isinstance(message, SecureAbort) and message.round == r:
                log.warning(
                    "your round %d of %d: the round was aborted (%s); the next one starts from "
                    "the same shared model",
                    *(k, n, message.reason),
                )
                return r + 1, weights, await _metrics(training, metrics), False
            if getattr(message, "round", r) != r:
                continue  # a late message of an earlier round
            try:
                if isinstance(message, SecureSetup) and taking_part and sent_shares is not None:
                    await client._send(sent_shares)  # asked again after a reconnect
                elif isinstance(message, SecureSetup) and taking_part:
                    setup = setup_of(client.task.id, message)
                    if (setup.clip, setup.weight_cap) != (settings.clip, settings.weight_cap):
                        raise SecureAggregationError(
                            "the server's clip range and weight cap are not the task's"
                        )
                    out = me.share(setup)
                    envelopes = [SecureEnvelope(peer=p, data=d) for p, d in out.envelopes.items()]
                    sent_shares = SecureShares(
                        round=r, commitment=out.commitment, envelopes=envelopes
                    )
                    await client._send(sent_shares)
                    log.info(
                        "your round %d of %d: secure round of %d members; shares sent",
                        *(k, n, len(setup.members)),
                    )
                elif isinstance(message, SecureInbox) and taking_part and sent_input is not None:
                    await client._send(sent_input)  # asked again after a reconnect
                elif isinstance(message, SecureInbox) and taking_part and summed:
                    # a second sum with it, over other members, would give the update away
                    sit_out(
                        "before it restarted, the server asked to unmask a sum with your update "
                        "in it; your update is not sent again in this round"
                    )
                elif isinstance(message, SecureInbox) and taking_part and setup is not None:
                    me.receive({e.peer: e.data for e in message.envelopes})
                    trained, metrics = await training
                    client._trained = trained
                    if prepared is None:  # once: after a restart the same update is masked anew
                        privacy = client.task.training.privacy
                        n_samples = len(client.train_data)
                        prepared = prepare_update(
                            weights, trained, n_samples, {}, privacy, client._noise
                        )
                    words = quantized_words(weights, prepared, setup)
                    masked = me.mask(words, message.senders)
                    sent_input = SecureInput(round=r, words=masked.astype("<u4").tobytes())
                    await client._send(sent_input)
                    give_up = time.monotonic() + client.wait_for_others_s
                    log.info("your round %d of %d: masked update sent; waiting for others", k, n)
                elif isinstance(message, SecureUnmask) and taking_part:
                    summed = summed or sent_input is not None  # (kept across restarts)
                    shares = me.reveal(message.survivors, message.dropped)
                    reveal = [SecureShare(of=o, kind=kd, share=s) for o, kd, s in shares]
                    await client._send(SecureReveal(round=r, shares=reveal))
                elif isinstance(message, ErrorMessage):
                    sit_out(f"[{message.code}] {message.message}")
            except SecureAggregationError as exc:  # refused here: reveal nothing, sit out
                sit_out(f"secure aggregation refused the round: {exc}")
    finally:
        if not training.done():
            training.cancel()


async def _metrics(
    training: asyncio.Future[tuple[Weights, list[EpochMetrics]]], metrics: list[EpochMetrics]
) -> list[EpochMetrics]:
    """The round's training metrics: training is waited for (it trains on the round's model
    either way) so that its epochs are counted."""
    if metrics:
        return metrics
    _, got = await training
    return got


def quantized_update(
    weights: Weights,
    trained: Weights,
    num_samples: int,
    privacy: PrivacyConfig | None,
    rng: np.random.Generator,
    setup: RoundSetup,
) -> np.ndarray:
    """The update of `weights` trained into `trained` through the pipeline (checks, privacy), as
    the round's quantised words: its change from `weights` with weight min(num_samples, cap).
    Federated participants and decentralized peers send these words masked."""
    prepared = prepare_update(weights, trained, num_samples, {}, privacy, rng)
    return quantized_words(weights, prepared, setup)


def quantized_words(weights: Weights, prepared: PreparedUpdate, setup: RoundSetup) -> np.ndarray:
    """The `prepared` update of `weights` as the round's quantised words: its change from
    `weights` with weight min(num_samples, cap), in the roster's clip range and scale."""
    weight = min(prepared.num_samples, setup.weight_cap)
    return quantize(_change(weights, prepared.weights), weight, setup.clip, setup.bits)
