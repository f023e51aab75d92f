"""Text tasks end to end: participants on real text files, a real server with the tokenizer,
the unigram baseline in the same run; `disco train` on a text folder; client input checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from disco import catalog
from disco.cli import main
from disco.client import LocalClient
from disco.data import load_for_task
from disco.data.text import iter_texts, load_text
from disco.errors import ConfigError, DataError
from disco.models import architectures as arch
from disco.simulation import simulate
from disco.simulation.runner import unigram_loss
from disco.task import Task
from disco.text import Tokenizer, attach_tokenizer, train_tokenizer
from disco.training import Event

CONTEXT = 16
SHARED_TEXT = "a tiny federated language model reads these lines again and again. "


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two participants' text files and a test file: a few real plays' opening lines."""
    from disco.data.shakespeare import works

    by_name = {w.name: w.text for w in works()}
    root = tmp_path_factory.mktemp("text")
    files = {
        "client_1/hamlet.txt": by_name["hamlet"][:6000],
        "client_1/notes.txt": SHARED_TEXT * 20,
        "client_2/lear.txt": by_name["lear"][:6000],
        "test/macbeth.txt": by_name["macbeth"][:3000],
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tokenizer(data: Path) -> Tokenizer:
    texts = [t for folder in ("client_1", "client_2") for _, t in iter_texts(data / folder)]
    return train_tokenizer(texts, 320)


def tiny_task(tokenizer: Tokenizer) -> Task:
    base = catalog.get("shakespeare")
    model = arch.gpt(tokenizer.vocab_size, CONTEXT, d_model=16, layers=1, heads=2, dropout=0.0)
    training = base.training.model_copy(
        update={
            "max_sequence_length": CONTEXT,
            "batch_size": 16,
            "learning_rate": 1e-2,
            "rounds_per_epoch": 1,
        }
    )
    training = attach_tokenizer(training, tokenizer)  # the model and the tokenizer change together
    return Task.model_validate(
        {**base.model_dump(), "id": "tiny-text", "model": model, "training": training}
    )


def test_unigram_loss_is_the_smoothed_frequency_of_the_test_tokens() -> None:
    train = [np.array([[0, 1, 1]]), np.array([[2, 1, 3]])]  # targets 1, 1, 1, 3
    test = np.array([[3, 1, 0]])  # targets 1, 0
    # add-one counts of tokens 0..3: 1, 4, 1, 2 (8 in all)
    want = -(math.log(4 / 8) + math.log(1 / 8)) / 2
    assert unigram_loss(train, test, 4) == pytest.approx(want)


def test_a_text_simulation_learns_and_reports_the_unigram_baseline(
    data: Path, tokenizer: Tokenizer
) -> None:
    """Run 2 participants for 2 rounds on the files, through a real server given the task
    with its tokenizer; the final model beats the unigram model on the test text."""
    task = tiny_task(tokenizer)
    result = simulate(task, 2, None, tokenizer=tokenizer, data_dir=data, seed=0)
    assert result.rounds == task.training.rounds == 2  # the task's plan
    assert result.unigram_loss is not None and result.unigram_loss > 0
    assert result.test_loss < result.unigram_loss
    assert result.test_accuracy is not None and 0 < result.test_accuracy < 1
    assert len(result.history) == 2
    summary = result.to_dict()
    assert "weights" not in summary and summary["unigram_loss"] == result.unigram_loss


def test_rounds_shorter_than_an_epoch_combine_the_models_within_an_epoch(
    data: Path, tokenizer: Tokenizer
) -> None:
    """With 3 rounds an epoch, the task's 2 epochs are 6 rounds; over each 3 a participant
    trains each of its batches once, and each round is combined by the server."""
    task = tiny_task(tokenizer)
    events: dict[int, list[Event]] = {1: [], 2: []}
    result = simulate(
        task,
        2,
        None,
        tokenizer=tokenizer,
        data_dir=data,
        seed=0,
        rounds_per_epoch=3,
        callbacks=lambda i: [events[i].append],
    )
    assert result.rounds == 6 and len(result.history) == 6
    assert result.test_loss < result.unigram_loss  # type: ignore[operator]
    windows = load_text(data / "client_1", tokenizer, CONTEXT, validation_split=0.1).train
    batches = math.ceil(len(windows) / task.training.batch_size)
    per_round = [
        sum(1 for e in events[1] if e.kind == "batch_end" and e.round == r)
        for r in sorted({e.round for e in events[1]})
    ]
    assert len(per_round) == 6 and sum(per_round[:3]) == batches == sum(per_round[3:])
    with pytest.raises(ConfigError, match="the server's task decides what a round trains"):
        simulate(task, 2, 1, server="http://127.0.0.1:9", rounds_per_epoch=2)
    with pytest.raises(ConfigError, match="rounds_per_epoch must be at least 1"):
        simulate(task, 2, 1, tokenizer=tokenizer, data_dir=data, rounds_per_epoch=0)
    with pytest.raises(SystemExit):
        main(["simulate", "--task", "shakespeare", "--rounds-per-epoch", "0"])
    with pytest.raises(ConfigError, match="not both"):
        simulate(
            task, 2, 1, tokenizer=tokenizer, data_dir=data, epochs_per_round=2, rounds_per_epoch=2
        )


def test_simulation_refuses_what_does_not_apply_to_text(data: Path, tokenizer: Tokenizer) -> None:
    task = tiny_task(tokenizer)
    with pytest.raises(ConfigError, match="not on text"):
        simulate(task, 2, 1, tokenizer=tokenizer, data_dir=data, attack="sign_flip:1")
    other = train_tokenizer(["something else entirely"] * 3, 270)
    with pytest.raises(Exception, match="is not task 'tiny-text'"):
        simulate(task, 2, 1, tokenizer=other, data_dir=data)


def test_a_client_takes_text_windows_of_its_task_only(data: Path, tokenizer: Tokenizer) -> None:
    task = tiny_task(tokenizer)
    windows = load_text(data / "client_1", tokenizer, CONTEXT, validation_split=0.1)
    client = LocalClient(task, windows)
    assert client.train_data is windows.train and client.val_data is windows.validation
    with pytest.raises(DataError, match="context of 8 tokens"):
        LocalClient(task, load_text(data / "client_1", tokenizer, 8))
    with pytest.raises(DataError, match="is a text task"):
        LocalClient(task, load_for_task(_csv(data), catalog.get("titanic").training))
    with pytest.raises(DataError, match="not a text task"):
        LocalClient(catalog.get("titanic"), windows)


def _csv(data: Path) -> Path:
    path = data / "t.csv"
    path.write_text("Pclass,Sex,Age,SibSp,Parch,Fare,Survived\n" + "3,male,22,1,0,7.25,0\n" * 3)
    return path


def test_disco_train_on_a_text_folder_then_generate(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Train the shakespeare task alone for one round on a small folder, test it on the test
    folder, save it, and let `disco generate` continue a prompt with the saved model."""
    saved = tmp_path / "m.safetensors"
    args = ["train", "--task", "shakespeare", "--data", str(data / "client_1"), "--rounds", "1"]
    code = main([*args, "--test", str(data / "test"), "--save", str(saved), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rounds"] == 1 and summary["saved"] == str(saved)
    assert summary["samples"] > 0 and math.isfinite(summary["test_loss"])
    assert summary["val_loss"] is not None
    generate = ["generate", "--task", "shakespeare", "--model", str(saved), "--prompt", "Ham."]
    code = main([*generate, "--max-tokens", "5", "--seed", "1"])
    assert code == 0
    assert capsys.readouterr().out.startswith("Ham.")
