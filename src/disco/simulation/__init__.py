"""Simulated federated training: many real protocol clients on one machine, attackers included."""

from disco.simulation.attacks import ATTACKS, AttackSpec, parse_attack
from disco.simulation.runner import SimulationResult, simulate, simulate_async

__all__ = [
    "ATTACKS",
    "AttackSpec",
    "SimulationResult",
    "parse_attack",
    "simulate",
    "simulate_async",
]
