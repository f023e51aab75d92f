"""`disco --help` and every subcommand's help: each option described, defaults, examples."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from disco.cli import build_parser


def _commands(
    parser: argparse.ArgumentParser, path: str = "disco"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """`parser` and every sub-parser under it, recursively, with their command lines."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


COMMANDS = dict(_commands(build_parser()))


def test_the_walk_finds_every_command() -> None:
    assert set(COMMANDS) == {
        "disco",
        "disco serve",
        "disco invite",
        "disco publish",
        "disco tasks",
        "disco train",
        "disco simulate",
        "disco data",
        "disco data samples",
        "disco data tokenizer",
        "disco generate",
        "disco demo",
    }


@pytest.mark.parametrize("path", COMMANDS)
def test_every_option_has_a_description(path: str) -> None:
    parser = COMMANDS[path]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{path}: {name} has no help"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{path}: subcommand {choice.dest} has no help"


@pytest.mark.parametrize("path", COMMANDS)
def test_every_command_has_examples_in_its_epilog(path: str) -> None:
    parser = COMMANDS[path]
    assert parser.epilog, f"{path} has no epilog"
    examples = [ln.strip() for ln in parser.epilog.splitlines() if ln.strip().startswith("disco ")]
    assert examples, f"{path}: no example starting with 'disco '"
    if path != "disco":
        assert all(ex.startswith(path) for ex in examples), examples
        assert parser.description, f"{path} has no description"
    help_text = parser.format_help()
    # the epilog keeps its line breaks: each example is a line of the help as written
    for line in parser.epilog.splitlines():
        assert line in help_text.splitlines()


@pytest.mark.parametrize("path", COMMANDS)
def test_defaults_are_shown_without_noise(path: str) -> None:
    text = COMMANDS[path].format_help()
    assert "default: None" not in text and "default: False" not in text
    assert "(default: )" not in text


def test_train_help_shows_defaults_and_exit_codes() -> None:
    text = " ".join(COMMANDS["disco train"].format_help().split())
    assert "seed of the validation split and data order (default: 0)" in text
    assert "--max-wait SECONDS" in text and "wait_for_others_s" in text
    assert "--alone" in text
    for code in ("0 done", "2 a user error", "3 stopped waiting for the others", "130 interrupted"):
        assert code in text
    samples = " ".join(COMMANDS["disco data samples"].format_help().split())
    assert "(default: 3)" in samples and "(default: iid)" in samples


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_max_wait_must_be_a_positive_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--task", "t", "--data", "d", "--server", "http://x", "--max-wait", value]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "--max-wait" in capsys.readouterr().err


def test_max_wait_is_seconds() -> None:
    argv = ["train", "--task", "t", "--data", "d", "--server", "http://x", "--max-wait", "90.5"]
    args = build_parser().parse_args(argv)
    assert args.max_wait == 90.5 and not args.alone
