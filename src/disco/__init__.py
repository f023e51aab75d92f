"""disco: distributed collaborative machine learning.

Data owners train one model together without sharing their data — through a server that
aggregates their updates (federated) or directly between them (decentralized) — from Python,
the ``disco`` command line, or a web page.

    >>> import disco
    >>> result = disco.simulate("mnist", clients=5, rounds=5)   # doctest: +SKIP
    >>> result.test_accuracy                                    # doctest: +SKIP
"""

import importlib
from typing import TYPE_CHECKING, Any

from disco import catalog
from disco.aggregation import Aggregator, Update, build_aggregator
from disco.data import Dataset, load_for_task
from disco.errors import DiscoError
from disco.models import ModelSpec, init_weights
from disco.task import DisplayInfo, PrivacyConfig, Task, TrainingInfo, parse_task
from disco.weights import Weights

if TYPE_CHECKING:
    from disco.client import Client, ClientResult, FederatedClient, LocalClient
    from disco.models import TorchModel, build_torch_model
    from disco.simulation import SimulationResult, simulate
    from disco.training import Trainer, evaluate

# What trains imports torch: loaded on first use, so that `import disco.server` (which runs this
# file first) and `disco serve` do not load it.
_LAZY = {
    "Client": "disco.client",
    "ClientResult": "disco.client",
    "FederatedClient": "disco.client",
    "LocalClient": "disco.client",
    "SimulationResult": "disco.simulation",
    "TorchModel": "disco.models",
    "Trainer": "disco.training",
    "build_torch_model": "disco.models",
    "evaluate": "disco.training",
    "simulate": "disco.simulation",
}

__version__ = "0.1.0"

__all__ = [
    "Aggregator",
    "Client",
    "ClientResult",
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
    "Update",
    "Weights",
    "__version__",
    "build_aggregator",
    "build_torch_model",
    "catalog",
    "evaluate",
    "init_weights",
    "load_for_task",
    "parse_task",
    "simulate",
]


def __getattr__(name: str) -> Any:
    """The members that need torch, imported the first time one is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
