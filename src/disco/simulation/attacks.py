"""Attacks on federated training, for research: malicious participants of `simulate`.

An attacker is a real participant: the same `FederatedClient` over WebSockets, named
``attacker-I`` (I: its index among the participants), reproducible under the simulation's seed.
Only what it sends differs (model poisoning, through the client's one `_outgoing` hook) or the
labels it trains on (data poisoning). Attackers are the last participants by index.

An attack is written ``KIND:AMOUNT`` or ``KIND:AMOUNT:NAME=VALUE``: AMOUNT below 1 is a share of
the participants (rounded half up, at least one), a whole number from 1 up is a count
(``sign_flip:0.2`` with 10 participants: attacker-9 and attacker-10; ``scale:3:k=50``: three).
With Δ an attacker's honest update (trained weights − received global model):

    sign_flip   sends −k·Δ (k=1)
    scale       sends k·Δ (k=10)
    gaussian    sends N(0, sigma²) noise in place of Δ (sigma=1), seeded
    label_flip  trains honestly on its data with labels y → C−1−y (classification only)
    alie        "a little is enough" (Baruch et al. 2019): all attackers send μ − z·σ, the
                coordinate-wise mean and sample standard deviation of their own honest deltas
                (they collude in-process); z = Φ⁻¹((n−s)/n), s = ⌊n/2+1⌋ − f, n participants,
                f attackers (the paper's z_max), unless given
    ipm         inner-product manipulation (Xie et al. 2020): all attackers send −eps·μ (eps=0.1),
                μ the mean of their own honest deltas
    lie         sends −k·Δ (k=1) claiming 2^40 samples: FedAvg without a share cap is taken over

Colluding attackers (alie, ipm) cannot see the honest updates; they estimate μ and σ from the
deltas they trained honestly themselves, as is standard. With one attacker σ is 0, so alie sends
μ, its honest delta. Attackers skip the task's client-side privacy: they do not follow the rules.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from disco.client import FederatedClient, ServerAccess
from disco.client.update import MAX_NUM_SAMPLES, PreparedUpdate
from disco.data.dataset import Dataset
from disco.errors import ConfigError, DataError, SessionError
from disco.task import Task
from disco.weights import Weights

__all__ = [
    "ATTACKS",
    "AttackKind",
    "AttackSpec",
    "AttackerClient",
    "Coalition",
    "alie",
    "alie_z",
    "flip_labels",
    "gaussian",
    "ipm",
    "parse_attack",
    "scale",
    "sign_flip",
]

log = logging.getLogger("disco.simulation")

AttackKind = Literal["sign_flip", "scale", "gaussian", "label_flip", "alie", "ipm", "lie"]

ATTACKS: dict[AttackKind, str] = {
    "sign_flip": "sends −k·Δ, Δ its honest update (k=1)",
    "scale": "sends k·Δ, Δ its honest update (k=10)",
    "gaussian": "sends N(0, sigma²) noise as its update (sigma=1)",
    "label_flip": "trains on its data with labels y → C−1−y (classification tasks)",
    "alie": "colluding: μ − z·σ of the attackers' honest deltas (z: Baruch et al. 2019's z_max)",
    "ipm": "colluding: −eps·μ of the attackers' honest deltas (eps=0.1, Xie et al. 2020)",
    "lie": "sends −k·Δ (k=1) claiming 2^40 samples",
}
"""Every attack, with what its attackers do (the CLI's help lists the same)."""

COLLUDING: frozenset[AttackKind] = frozenset({"alie", "ipm"})
"""Attacks whose attackers pool their honest deltas each round (`Coalition`)."""

_PARAMS: dict[AttackKind, dict[str, float | None]] = {
    "sign_flip": {"k": 1.0},
    "scale": {"k": 10.0},
    "gaussian": {"sigma": 1.0},
    "label_flip": {},
    "alie": {"z": None},  # None: the paper's z_max for n participants and f attackers
    "ipm": {"eps": 0.1},
    "lie": {"k": 1.0},
}
"""The settings each attack takes, with their defaults."""

_SETTINGS = ("k", "sigma", "z", "eps")

SYNTAX = "KIND:AMOUNT or KIND:AMOUNT:NAME=VALUE (e.g. sign_flip:0.2, scale:3:k=50)"


def _kinds() -> str:
    return ", ".join(ATTACKS)


@dataclass(frozen=True)
class AttackSpec:
    """Which attack, by how many participants, with which settings (None: the default).

    ``amount`` below 1 is a share of the participants (rounded half up, at least one); a whole
    number from 1 up is a count. Only the settings of `kind` may be given: ``k`` (sign_flip,
    scale, lie), ``sigma`` (gaussian), ``z`` (alie), ``eps`` (ipm).
    """

    kind: AttackKind
    amount: float
    k: float | None = None
    sigma: float | None = None
    z: float | None = None
    eps: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ConfigError(f"unknown attack {self.kind!r}; known: {_kinds()}")
        a = self.amount
        if isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a) or a <= 0:
            raise ConfigError(
                f"attack amount must be a share in (0, 1) or a count of at least 1, got {a!r}"
            )
        if a >= 1 and not float(a).is_integer():
            raise ConfigError(f"attack amount {a:g} is neither a share in (0, 1) nor a whole count")
        takes = _PARAMS[self.kind]
        for name, value in self.settings().items():
            if name not in takes:
                allowed = ", ".join(takes) or "no settings"
                raise ConfigError(f"attack {self.kind} takes {allowed}, not {name}")
            low_ok = value >= 0 if name == "z" else value > 0
            if not (math.isfinite(value) and low_ok):
                bound = "at least 0" if name == "z" else "greater than 0"
                raise ConfigError(f"attack setting {name} must be a finite number {bound}")

    def settings(self) -> dict[str, float]:
        """The settings given (not None), by name."""
        return {
            f.name: value
            for f in fields(self)
            if f.name in _SETTINGS and (value := getattr(self, f.name)) is not None
        }

    def __str__(self) -> str:
        text = f"{self.kind}:{self.amount:g}"
        given = ",".join(f"{n}={v:g}" for n, v in self.settings().items())
        return f"{text}:{given}" if given else text

    def count(self, clients: int) -> int:
        """How many of `clients` participants attack."""
        if self.amount < 1:
            f = max(1, math.floor(self.amount * clients + 0.5))
        else:
            f = int(self.amount)
        if f > clients:
            raise ConfigError(f"attack {self}: {f} attackers but only {clients} participants")
        return f

    def attackers(self, clients: int) -> list[int]:
        """The attackers' participant indices (from 1): the last ones."""
        return list(range(clients - self.count(clients) + 1, clients + 1))

    def resolve(self, task: Task, clients: int) -> AttackSpec:
        """This attack with every setting of its kind filled in, checked against `task` and the
        number of participants."""
        f = self.count(clients)
        if self.kind == "label_flip":
            num_classes(task)
        defaults = {n: v for n, v in _PARAMS[self.kind].items() if v is not None}
        if self.kind == "alie" and self.z is None:
            defaults["z"] = alie_z(clients, f)
        values = {**defaults, **self.settings()}
        return replace(
            self,
            k=values.get("k"),
            sigma=values.get("sigma"),
            z=values.get("z"),
            eps=values.get("eps"),
        )

    def describe(self, clients: int) -> dict[str, Any]:
        """A JSON-ready account: the spec, the kind, the attackers' names, the settings."""
        return {
            "spec": str(self),
            "kind": self.kind,
            "participants": [attacker_name(i) for i in self.attackers(clients)],
            "settings": self.settings(),
        }

    def setting(self, name: str) -> float:
        """A setting's value (after `resolve`, every setting of the kind has one)."""
        value = self.settings().get(name)
        if value is None:
            raise ConfigError(f"attack {self} has no value for {name} (resolve it first)")
        return value


def attacker_name(index: int) -> str:
    """The name participant `index` (from 1) takes when it attacks."""
    return f"attacker-{index}"


def parse_attack(text: str) -> AttackSpec:
    """An `AttackSpec` from ``KIND:AMOUNT`` or ``KIND:AMOUNT:NAME=VALUE[,NAME=VALUE]``."""
    parts = [p.strip() for p in text.strip().split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"attack {text!r}: expected {SYNTAX}")
    kind = parts[0]
    if kind not in ATTACKS:
        raise ConfigError(f"unknown attack {kind!r}; known: {_kinds()}")
    try:
        amount = float(parts[1])
    except ValueError:
        raise ConfigError(
            f"attack {text!r}: amount {parts[1]!r} is not a number (a share in (0, 1), "
            "or a count of at least 1)"
        ) from None
    settings: dict[str, float] = {}
    for item in parts[2].split(",") if len(parts) == 3 else []:
        name, eq, value = (s.strip() for s in item.partition("="))
        if not (name and eq and value):
            raise ConfigError(f"attack {text!r}: setting {item!r} is not NAME=VALUE")
        if name not in _PARAMS[kind]:
            allowed = ", ".join(_PARAMS[kind]) or "no settings"
            raise ConfigError(f"attack {kind} takes {allowed}, not {name!r}")
        try:
            settings[name] = float(value)
        except ValueError:
            raise ConfigError(f"attack {text!r}: {name}={value!r} is not a number") from None
    return AttackSpec(kind, amount, **settings)


# -- the attacks as pure functions -----------------------------------------------------------
def sign_flip(delta: Weights, k: float = 1.0) -> Weights:
    """The update −k·Δ."""
    return delta * -k


def scale(delta: Weights, k: float = 10.0) -> Weights:
    """The update k·Δ."""
    return delta * k


def gaussian(like: Weights, sigma: float, rng: np.random.Generator) -> Weights:
    """Noise N(0, sigma²) per coordinate, shaped like `like`."""
    return like.unflatten(rng.normal(0.0, sigma, like.size))


def _stack(deltas: Sequence[Weights]) -> np.ndarray:
    if not deltas:
        raise ConfigError("a colluding attack needs at least one delta")
    return np.stack([d.flatten().astype(np.float64) for d in deltas])  # (f, P)


def alie(deltas: Sequence[Weights], z: float) -> Weights:
    """μ − z·σ: coordinate-wise mean and sample standard deviation (0 for one delta)."""
    stack = _stack(deltas)
    std = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])
    return deltas[0].unflatten(stack.mean(axis=0) - z * std)


def alie_z(n: int, f: int) -> float:
    """The paper's z_max = Φ⁻¹((n − s)/n), s = ⌊n/2 + 1⌋ − f, for f attackers among n."""
    if not 1 <= f <= n:
        raise ConfigError(f"alie: {f} attackers among {n} participants")
    s = math.floor(n / 2 + 1) - f
    if s < 1:
        raise ConfigError(
            f"alie: with {f} attackers among {n} participants they are a majority "
            f"(s = ⌊n/2+1⌋ − f = {s}) and z = Φ⁻¹((n−s)/n) is not finite; give z, "
            "e.g. alie:0.6:z=1.5"
        )
    return NormalDist().inv_cdf((n - s) / n)


def ipm(deltas: Sequence[Weights], eps: float = 0.1) -> Weights:
    """−eps·μ, μ the coordinate-wise mean of `deltas`."""
    return deltas[0].unflatten(-eps * _stack(deltas).mean(axis=0))


def num_classes(task: Task) -> int:
    """How many classes `task` predicts; `ConfigError` for a regression task."""
    n = task.model.num_classes
    if n is None:
        raise ConfigError(
            f"label_flip needs a classification task; {task.id!r} predicts numbers (regression)"
        )
    return n


def flip_labels(data: Dataset, classes: int) -> Dataset:
    """`data` with every label y replaced by ``classes − 1 − y``."""
    if not data.is_classification:
        raise DataError("label_flip needs class labels; this dataset holds numbers (regression)")
    if len(data) and (data.y.min() < 0 or data.y.max() >= classes):
        raise DataError(f"labels outside 0..{classes - 1} cannot be flipped")
    return Dataset(data.x, classes - 1 - data.y, data.sources)


# -- colluding attackers ---------------------------------------------------------------------
class Coalition:
    """Colluding attackers pool their honest deltas each round, in-process.

    `share` waits at most `timeout_s` for the other members' deltas of the same round.
    """

    def __init__(self, members: Sequence[str], timeout_s: float) -> None:
        if not members:
            raise ConfigError("a coalition needs members")
        self.members = tuple(members)
        self.timeout_s = timeout_s
        self._deltas: dict[int, dict[str, Weights]] = {}
        self._complete: dict[int, asyncio.Event] = {}
        self._collected: dict[int, int] = {}

    async def share(self, round: int, member: str, delta: Weights) -> list[Weights]:
        """Add `member`'s delta for server round `round`; every member's, in member order."""
        if member not in self.members:
            raise SessionError(f"{member} is not in the coalition ({', '.join(self.members)})")
        deltas = self._deltas.setdefault(round, {})
        if member in deltas:
            raise SessionError(f"{member} shared its delta for round {round} twice")
        deltas[member] = delta
        complete = self._complete.setdefault(round, asyncio.Event())
        if len(deltas) == len(self.members):
            complete.set()
        try:
            async with asyncio.timeout(self.timeout_s):
                await complete.wait()
        except TimeoutError:
            missing = ", ".join(m for m in self.members if m not in deltas)
            raise SessionError(
                f"{member} waited {self.timeout_s:g} s for the other attackers' deltas of round "
                f"{round}; missing: {missing}"
            ) from None
        pooled = [deltas[m] for m in self.members]
        self._collected[round] = self._collected.get(round, 0) + 1
        if self._collected[round] == len(self.members):  # everyone has them: forget the round
            del self._deltas[round], self._complete[round], self._collected[round]
        return pooled


class AttackerClient(FederatedClient):
    """A federated participant that attacks: another outgoing update, or flipped labels.

    `attack` must be resolved (`AttackSpec.resolve`); colluding attacks need the `coalition`,
    gaussian noise is drawn from `rng`. Other arguments are `FederatedClient`'s.
    """

    def __init__(
        self,
        task: Task,
        data: Dataset,
        server: str | ServerAccess,
        *,
        attack: AttackSpec,
        coalition: Coalition | None = None,
        rng: np.random.Generator | None = None,
        **kwargs: Any,
    ) -> None:
        if attack.kind == "label_flip":
            data = flip_labels(data, num_classes(task))
        if attack.kind in COLLUDING and coalition is None:
            raise ConfigError(f"attack {attack.kind} needs a coalition of attackers")
        super().__init__(task, data, server, **kwargs)
        self.attack = attack
        self.coalition = coalition
        self._rng = rng if rng is not None else np.random.default_rng(self.seed)
        log.info("%s attacks: %s (%s)", self.name, attack, ATTACKS[attack.kind])

    async def _outgoing(
        self, round: int, received: Weights, prepared: PreparedUpdate
    ) -> PreparedUpdate:
        kind = self.attack.kind
        if kind == "label_flip":
            return prepared
        honest = prepared.weights - received
        num_samples = prepared.num_samples
        if kind in ("sign_flip", "lie"):
            delta = sign_flip(honest, self.attack.setting("k"))
            num_samples = MAX_NUM_SAMPLES if kind == "lie" else num_samples
        elif kind == "scale":
            delta = scale(honest, self.attack.setting("k"))
        elif kind == "gaussian":
            delta = gaussian(honest, self.attack.setting("sigma"), self._rng)
        else:
            if self.coalition is None:  # checked in __init__
                raise ConfigError(f"attack {kind} needs a coalition of attackers")
            pooled = await self.coalition.share(round, self.name, honest)
            if kind == "alie":
                delta = alie(pooled, self.attack.setting("z"))
            else:
                delta = ipm(pooled, self.attack.setting("eps"))
        log.info(
            "%s: round %d: sending its %s update (norm %.4g, honest %.4g, %d samples claimed)",
            *(self.name, round, kind, delta.l2_norm(), honest.l2_norm(), num_samples),
        )
        return replace(prepared, weights=received + delta, num_samples=num_samples)
