"""`disco generate`: a text task's model continues a prompt on stdout; bad input in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from disco import catalog
from disco.cli import main
from disco.models import init_weights


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shakespeare task's initial model, saved as `disco train --save` saves one."""
    path = tmp_path_factory.mktemp("m") / "shakespeare.safetensors"
    init_weights(catalog.get("shakespeare").model, seed=0).save(path)
    return path


def test_generates_the_same_text_at_temperature_zero(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run twice greedily: the prompt, then the same continuation; --no-prompt leaves it out."""
    args = ["generate", "--task", "shakespeare", "--model", str(model_file), "--prompt", "ROMEO."]
    outs = []
    for extra in ([], [], ["--no-prompt"]):
        assert main([*args, "--temperature", "0", "--max-tokens", "6", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[0].startswith("ROMEO.")
    assert "ROMEO." + outs[2] == outs[0]
    assert len(outs[0]) > len("ROMEO.\n")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--task", "mnist", "--model", "MODEL"], "not a text task"),
        (["--task", "nosuch", "--model", "MODEL"], "unknown task 'nosuch'"),
        (["--task", "shakespeare", "--model", "missing.safetensors"], "no such model file"),
        (["--task", "shakespeare", "--model", "MODEL", "--max-tokens", "-1"], "max_tokens"),
        (["--task", "shakespeare", "--model", "MODEL", "--invitation", "x"], "go with --server"),
    ],
)
def test_bad_input_is_one_line_in_words(
    args: list[str], words: str, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(model_file) if a == "MODEL" else a for a in args]
    assert main(["generate", *argv]) == 2
    assert words in capsys.readouterr().err.replace("\n", " ")


def test_a_model_of_another_task_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "mnist.safetensors"
    init_weights(catalog.get("mnist").model, seed=0).save(other)
    assert main(["generate", "--task", "shakespeare", "--model", str(other)]) == 2
    assert "is not a model of task 'shakespeare'" in capsys.readouterr().err
