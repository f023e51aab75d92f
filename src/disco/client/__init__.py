"""Participants: local and federated clients behind one interface."""

from disco.client.access import ServerAccess
from disco.client.base import Client, ClientResult
from disco.client.federated import FederatedClient
from disco.client.local import LocalClient

__all__ = ["Client", "ClientResult", "FederatedClient", "LocalClient", "ServerAccess"]
