"""Simulated federated training: many real protocol clients on one machine."""

from disco.simulation.runner import SimulationResult, simulate, simulate_async

__all__ = ["SimulationResult", "simulate", "simulate_async"]
