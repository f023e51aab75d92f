"""The public API: `disco.__all__` is pinned, and every name in it is importable."""

from __future__ import annotations

import importlib

import disco

EXPORTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert disco.__all__ == EXPORTED
    assert sorted(disco.__all__) == disco.__all__


def test_every_exported_name_is_importable() -> None:
    module = importlib.import_module("disco")

    for name in EXPORTED:
        assert getattr(module, name) is not None, name


def test_exported_members_come_from_disco() -> None:
    for name in EXPORTED:
        member = getattr(disco, name)
        owner = getattr(member, "__module__", None) or getattr(member, "__name__", "")
        if name != "__version__":
            assert owner.startswith("disco"), name
    assert isinstance(disco.__version__, str)
