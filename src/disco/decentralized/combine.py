"""How a peer combines a round's updates into its next model (docs/protocol.md §18.6).

Each peer combines exactly the updates the server lists in `Combine` (its own among them when
listed), whatever else it received:

* **all to all**: with the task's aggregation rule, on the changes ``trained − round model`` in
  the order of the peers' ids. Every rule is bit-identical whatever the order updates arrive in,
  and every peer builds the same aggregator (`peer_aggregator`: the bucketing secret is derived
  from the task, not drawn), so all peers end the round with the same model, bit for bit. When
  the rule cannot combine them, every peer fails alike and all keep the round's model.
* **sparse**: Metropolis–Hastings mixing (`disco.decentralized.topology`) of its own trained
  model with its listed neighbours', in float64, then back to float32.

A peer refuses a received update the rule could not take like a bad digest (`refusal`: with
``mean``, a value that changed by 256 or more); other rules' limits show when combining.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from disco.aggregation import Aggregator, Update, build_aggregator
from disco.aggregation.fold import MAX_CHANGE
from disco.errors import AggregationError
from disco.protocol import Combine, PeerUpdate, RoundPlan
from disco.task import Task
from disco.weights import Weights

__all__ = ["combine_updates", "peer_aggregator", "refusal"]

log = logging.getLogger("disco.client.peers")


def peer_aggregator(task: Task) -> Aggregator:
    """The task's aggregator as every peer builds it: the same buckets on every peer."""
    # every peer forms the same buckets: the bucketing secret is the task's, not random
    secret = hashlib.sha256(f"disco-peers:{task.id}".encode()).hexdigest()
    return build_aggregator(task.training, secret=secret)


def combine_updates(
    aggregator: Aggregator,
    me: str,
    plan: RoundPlan,
    base: Weights,
    own: PeerUpdate,
    combine: Combine,
    received: dict[str, PeerUpdate],
) -> Weights:
    """The model peer `me` ends round `plan.round` with, from the round's model `base`, its own
    update and those `received` (by sender; `own` is added to it)."""
    received[me] = own
    chosen = [p for p in sorted(combine.peers) if p in received]
    if plan.topology == "all_to_all":
        if not chosen:
            return base
        updates = [Update(p, received[p].weights - base, received[p].num_samples) for p in chosen]
        try:
            return aggregator.aggregate(base, updates, round=plan.round).weights
        except AggregationError as exc:  # every peer fails alike: all keep the round's model
            log.warning("round %d: the updates could not be combined (%s)", plan.round, exc)
            return base
    weights = {p.id: p.weight for p in plan.peers if p.id in chosen}
    own_weight = 1.0 - sum(weights.values())
    mixed = {name: own_weight * own.weights[name].astype(np.float64) for name in own.weights}
    for p, w in weights.items():
        for name in mixed:
            mixed[name] += w * received[p].weights[name].astype(np.float64)
    return Weights([(name, value.astype(np.float32)) for name, value in mixed.items()])


def refusal(rule: str, base: Weights | None, weights: Weights) -> str | None:
    """Why `rule` cannot take `weights` as an update of a round whose model is `base` (None: it
    can, or `base` is not known yet)."""
    if base is None or rule != "mean":
        return None
    change = max(
        (float(np.max(np.abs(w - base[n]))) for n, w in weights.items() if w.size), default=0.0
    )
    if not change < MAX_CHANGE:
        return f"a value changed by {change:g} in one round; the mean takes less than 256"
    return None
