"""A text task names its context, vocabulary and tokenizer; the tokenizer.json travels beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from disco import catalog
from disco.errors import TaskError
from disco.models.spec import Dense, ModelSpec
from disco.task import Task, TrainingInfo, parse_task
from disco.text import (
    Tokenizer,
    attach_tokenizer,
    check_task_tokenizer,
    load_task_folder,
    save_task_folder,
    train_tokenizer,
)

CORPUS = ["Shall I compare thee to a summer's day? Thou art more lovely and more temperate."] * 3
CONTEXT = 8


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(CORPUS, 300)


def model(context: int = CONTEXT) -> ModelSpec:
    return ModelSpec(input_shape=(context,), layers=(Dense(units=2),), loss="mse")


def text_task(tokenizer: Tokenizer) -> Task:
    training = TrainingInfo(data_type="text", max_sequence_length=CONTEXT)
    return Task(
        id="poems",
        display={"title": "Poems"},
        training=attach_tokenizer(training, tokenizer),
        model=model(),
    )


def test_attaching_names_the_vocabulary_and_the_bytes(tokenizer: Tokenizer) -> None:
    task = text_task(tokenizer)
    assert task.training.vocab_size == tokenizer.vocab_size
    assert task.training.tokenizer_digest == tokenizer.digest
    check_task_tokenizer(task, tokenizer)
    other = train_tokenizer([*CORPUS, "Rough winds do shake the darling buds of May"], 300)
    moved = attach_tokenizer(task, other)
    assert moved.training.tokenizer_digest == other.digest and moved.id == task.id
    with pytest.raises(TaskError, match=r"this tokenizer\.json is not task 'poems''s"):
        check_task_tokenizer(task, other)


def test_a_task_whose_vocabulary_was_edited_is_refused_with_its_tokenizer(
    tokenizer: Tokenizer,
) -> None:
    edited = text_task(tokenizer).with_training(vocab_size=tokenizer.vocab_size + 1)
    with pytest.raises(TaskError, match=r"says vocab_size \d+ but its tokenizer has \d+ tokens"):
        check_task_tokenizer(edited, tokenizer)


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("max_sequence_length", "a text task needs max_sequence_length"),
        ("vocab_size", "a text task needs vocab_size"),
        ("tokenizer_digest", "a text task needs tokenizer_digest"),
    ],
)
def test_a_text_task_without_its_settings_is_refused(
    tokenizer: Tokenizer, field: str, words: str
) -> None:
    doc = text_task(tokenizer).model_dump(mode="json")
    del doc["training"][field]
    with pytest.raises(TaskError, match=words):
        parse_task(doc)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"vocab_size": 256}, "training.vocab_size: must be at least 257"),
        ({"vocab_size": 65_537}, "training.vocab_size: must be at most 65536"),
        ({"max_sequence_length": 4097}, "training.max_sequence_length: must be at most 4096"),
        ({"tokenizer_digest": "AB" * 32}, "tokenizer_digest: should be a SHA-256 digest"),
    ],
)
def test_text_settings_out_of_bounds_are_refused(
    tokenizer: Tokenizer, changes: dict[str, object], words: str
) -> None:
    with pytest.raises(TaskError, match=words):
        text_task(tokenizer).with_training(**changes)


def test_the_model_reads_the_context(tokenizer: Tokenizer) -> None:
    doc = text_task(tokenizer).model_dump(mode="json")
    doc["model"] = model(CONTEXT * 2).model_dump(mode="json")
    with pytest.raises(TaskError, match="does not fit the task's context of 8 tokens"):
        parse_task(doc)


def test_a_training_info_alone_needs_none_of_them() -> None:
    """Rules, schedules and tests build a bare `TrainingInfo(data_type="text")`: it stays valid."""
    assert TrainingInfo(data_type="text").tokenizer_digest is None


def test_a_task_folder_holds_the_task_and_its_tokenizer(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    task = text_task(tokenizer)
    folder = save_task_folder(tmp_path / "poems", task, tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == ["task.json", "tokenizer.json"]
    assert (folder / "tokenizer.json").read_bytes() == tokenizer.to_bytes()
    loaded, again = load_task_folder(folder)
    assert loaded == task
    assert again is not None and again.digest == tokenizer.digest


def test_a_task_folder_with_another_or_no_tokenizer_is_refused(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    task = text_task(tokenizer)
    folder = save_task_folder(tmp_path / "poems", task, tokenizer)
    doc = json.loads((folder / "tokenizer.json").read_bytes())
    doc["model"]["merges"] = doc["model"]["merges"][:-1]
    (folder / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TaskError, match="is not task 'poems''s"):
        load_task_folder(folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(TaskError, match=r"tokenizer.json is missing"):
        load_task_folder(folder)
    with pytest.raises(TaskError, match="save it with its tokenizer"):
        save_task_folder(tmp_path / "other", task)
    with pytest.raises(TaskError, match=r"cannot read task\.json"):
        load_task_folder(tmp_path / "nowhere")


def test_a_task_folder_of_another_kind_of_task_has_no_tokenizer(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    mnist = catalog.get("mnist")
    assert load_task_folder(save_task_folder(tmp_path / "mnist", mnist)) == (mnist, None)
    with pytest.raises(TaskError, match="is not a text task"):
        save_task_folder(tmp_path / "x", mnist, tokenizer)
