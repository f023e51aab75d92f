"""disco: distributed collaborative machine learning.

Data owners train one model together without sharing their data — through a server that
aggregates their updates (federated) or directly between them (decentralized) — from Python,
the ``disco`` command line, or a web page.

    >>> import disco
    >>> result = disco.simulate("mnist", clients=5, rounds=5)   # doctest: +SKIP
    >>> result.test_accuracy                                    # doctest: +SKIP
"""

from disco import catalog
from disco.aggregation import Contribution, aggregate
from disco.client import Client, ClientResult, FederatedClient, LocalClient
from disco.data import Dataset, load_for_task
from disco.errors import DiscoError
from disco.models import ModelSpec, TorchModel, build_torch_model, init_weights
from disco.simulation import SimulationResult, simulate
from disco.task import DisplayInfo, PrivacyConfig, Task, TrainingInfo, parse_task
from disco.training import Trainer, evaluate
from disco.weights import Weights

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClientResult",
    "Contribution",
    "Dataset",
    "DiscoError",
    "DisplayInfo",
    "FederatedClient",
    "LocalClient",
    "ModelSpec",
    "PrivacyConfig",
    "SimulationResult",
    "Task",
    "TorchModel",
    "Trainer",
    "TrainingInfo",
    "Weights",
    "__version__",
    "aggregate",
    "build_torch_model",
    "catalog",
    "evaluate",
    "init_weights",
    "load_for_task",
    "parse_task",
    "simulate",
]
