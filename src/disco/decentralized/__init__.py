"""Decentralized learning: peers exchange models directly; the server only introduces them.

`topology` decides who exchanges with whom in a round and with what mixing weights.
"""

from disco.decentralized.topology import ALL_TO_ALL_LIMIT, Round, mixing_weights, peer_graph

__all__ = ["ALL_TO_ALL_LIMIT", "Round", "mixing_weights", "peer_graph"]
