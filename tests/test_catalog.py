"""The built-in task catalog: ids, lookup errors, and models that build and run."""

from __future__ import annotations

import pytest
import torch

from disco import catalog
from disco.errors import TaskError
from disco.models import build_torch_model

IDS = ["titanic", "mnist", "fashion_mnist", "breast_cancer", "cifar10", "lus_covid", "shakespeare"]
CLASSIFIERS = IDS[:-1]


def test_ids() -> None:
    assert catalog.ids() == IDS
    assert [task.id for task in catalog.all_tasks()] == IDS


@pytest.mark.parametrize("task_id", IDS)
def test_get_returns_the_task_with_that_id(task_id: str) -> None:
    assert catalog.get(task_id).id == task_id
    assert catalog.fetch(task_id) == catalog.get(task_id)


def test_get_unknown_id_lists_the_known_ids() -> None:
    with pytest.raises(TaskError, match="'nope'") as info:
        catalog.get("nope")

    for task_id in IDS:
        assert task_id in str(info.value)


@pytest.mark.parametrize("task_id", CLASSIFIERS)
def test_every_task_model_runs_a_forward_pass(task_id: str) -> None:
    task = catalog.get(task_id)
    model = build_torch_model(task.model)
    batch = torch.zeros((3, *task.model.input_shape))

    with torch.no_grad():
        model.eval()
        logits = model(batch)
        probs = model.predict_proba(batch)

    outputs = 1 if task.model.loss == "binary_crossentropy" else len(task.training.labels)
    assert tuple(logits.shape) == (3, outputs)
    assert tuple(probs.shape) == (3, outputs)
    assert torch.isfinite(probs).all()
    assert task.model.num_classes == len(task.training.labels)
    if task.training.data_type == "image":
        t = task.training
        assert task.model.input_shape == (t.image_height, t.image_width, t.channels)
    else:
        assert task.model.input_shape == (len(task.training.input_columns),)


def test_the_text_task_reads_its_context_and_predicts_every_token() -> None:
    task = catalog.get("shakespeare")
    t = task.training
    model = build_torch_model(task.model)
    with torch.no_grad():
        model.eval()
        logits = model(torch.zeros((2, t.max_sequence_length or 0), dtype=torch.long))
    assert tuple(logits.shape) == (2, t.max_sequence_length, t.vocab_size)
    assert torch.isfinite(logits).all()
    assert task.model.input_shape == (t.max_sequence_length,)
