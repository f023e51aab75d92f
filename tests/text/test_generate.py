"""Text generation: choosing tokens, stopping, streaming whole characters, and a real tiny GPT."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from disco.errors import DataError
from disco.models import architectures as arch
from disco.models import build_torch_model
from disco.text import Tokenizer, generate, model_logits, train_tokenizer


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer(["to be or not to be, that is the question. café"] * 4, 300)


class Script:
    """A model that says `text` token by token (then the end of text), recording what it saw."""

    def __init__(self, tok: Tokenizer, text: str, end: bool = True) -> None:
        self.ids = tok.encode(text) + ([tok.eot_id] if end else [])
        self.vocab = tok.vocab_size
        self.seen: list[list[int]] = []

    def __call__(self, ids: Sequence[int]) -> np.ndarray:
        self.seen.append(list(ids))
        scores = np.zeros(self.vocab)
        scores[self.ids[min(len(self.seen) - 1, len(self.ids) - 1)]] = 10.0
        return scores


def run(tok: Tokenizer, model: Script, prompt: str = "", **kw: object) -> list[str]:
    return list(generate(model, tok, prompt, **kw))  # type: ignore[arg-type]


def test_greedy_says_the_likeliest_tokens_and_stops_at_the_end_of_text(tok: Tokenizer) -> None:
    """A scripted model at temperature 0: the script comes back, the end-of-text token ends it
    unseen, and the prompt was read after the end-of-text token."""
    model = Script(tok, " or not to be")
    pieces = run(tok, model, "to be", temperature=0)
    assert "".join(pieces) == " or not to be"
    assert model.seen[0] == [tok.eot_id, *tok.encode("to be")]
    assert len(model.seen) == len(model.ids)  # the last call chose the end of text


def test_top_k_one_is_greedy_whatever_the_seed(tok: Tokenizer) -> None:
    for seed in range(5):
        pieces = run(tok, Script(tok, "that is the question"), temperature=1.5, top_k=1, seed=seed)
        assert "".join(pieces) == "that is the question"


def test_sampling_is_reproducible_under_its_seed(tok: Tokenizer) -> None:
    """A model with no preference: the same seed gives the same text, other seeds others."""

    def flat(ids: Sequence[int]) -> np.ndarray:
        scores = np.zeros(tok.vocab_size)
        scores[tok.eot_id] = -1e9  # never ends early
        return scores

    texts = ["".join(generate(flat, tok, "to", max_tokens=12, seed=s)) for s in (1, 1, 2, 3)]
    assert texts[0] == texts[1]
    assert len({texts[0], texts[2], texts[3]}) == 3
    # top_k keeps the k best: with two tokens favoured, only they are drawn
    a, b = tok.encode("to")[0], tok.encode(" be")[0]

    def two(ids: Sequence[int]) -> np.ndarray:
        scores = np.full(tok.vocab_size, -5.0)
        scores[[a, b]] = 0.0
        return scores

    text = "".join(generate(two, tok, max_tokens=30, top_k=2, temperature=1.0, seed=4))
    assert set(tok.encode(text)) == {a, b}


def test_max_tokens_bounds_the_calls(tok: Tokenizer) -> None:
    model = Script(tok, "to be or not to be, that is the question", end=False)
    text = "".join(run(tok, model, temperature=0, max_tokens=3))
    assert len(model.seen) == 3
    assert text == tok.decode(model.ids[:3])
    assert run(tok, Script(tok, "x"), max_tokens=0) == []


def test_the_context_is_the_last_tokens(tok: Tokenizer) -> None:
    model = Script(tok, "to be or not to be, that is the question", end=False)
    run(tok, model, "that is the question", temperature=0, max_tokens=6, context=4)
    assert all(len(ids) <= 4 for ids in model.seen)
    assert model.seen[-1][-1] == model.ids[4]


def test_stop_strings_end_the_text_before_them_and_never_leak(tok: Tokenizer) -> None:
    """A stop string ends the text just before it; the pieces streamed before it never hold a
    part of it, even when it spans tokens."""
    pieces = run(tok, Script(tok, "to be or not to be"), temperature=0, stop=["or not"])
    assert "".join(pieces) == "to be "
    pieces = run(tok, Script(tok, "to be or not to be"), temperature=0, stop=("xyz", " be"))
    assert "".join(pieces) == "to"
    assert run(tok, Script(tok, "to be"), temperature=0, stop="to") == []
    # a stop string that never comes: all of it, the held-back tail included
    assert "".join(run(tok, Script(tok, "to be"), temperature=0, stop=["be!"])) == "to be"


def test_pieces_are_whole_characters(tok: Tokenizer) -> None:
    """A character made of several tokens (its UTF-8 bytes) comes out whole, never as U+FFFD."""
    plain = train_tokenizer(["abc"], 257)  # bytes only: é is two tokens
    model = Script(plain, "café olé")
    pieces = run(plain, model, temperature=0)
    assert "".join(pieces) == "café olé"
    assert all("\ufffd" not in p for p in pieces)
    # a model that stops inside a character: the half character is U+FFFD at the end
    half = Script(plain, "é")
    half.ids = [half.ids[0], plain.eot_id]
    assert "".join(run(plain, half, temperature=0)) == "\ufffd"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -2}, "top_k"),
        ({"stop": [""]}, "stop string"),
        ({"context": 0}, "context"),
    ],
)
def test_bad_settings_are_refused_in_words(
    tok: Tokenizer, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(DataError, match=words):
        run(tok, Script(tok, "to"), **kwargs)


def test_a_tiny_gpt_generates_the_same_text_twice(tok: Tokenizer) -> None:
    """A real PyTorch GPT (random weights) through `model_logits`: temperature 0 and a seeded
    draw are each the same run after run, and the text has the tokens asked for."""
    model = build_torch_model(arch.gpt(tok.vocab_size, 8, d_model=16, layers=1, heads=2))
    logits = model_logits(model)
    greedy = [
        "".join(generate(logits, tok, "to be", temperature=0, max_tokens=10, context=8))
        for _ in range(2)
    ]
    drawn = [
        "".join(generate(logits, tok, "to be", max_tokens=10, seed=3, context=8)) for _ in range(2)
    ]
    assert greedy[0] == greedy[1] and drawn[0] == drawn[1]
    assert greedy[0]
    assert logits(tok.encode("to be")).shape == (tok.vocab_size,)


def test_generate_checks_its_settings_before_any_text_is_made() -> None:
    """`generate` refuses bad settings when it is called, not at the first piece (the CLI
    prints nothing before the error)."""
    tok = train_tokenizer(["abc abc abc"] * 3, 260)

    def never(ids: Sequence[int]) -> np.ndarray:
        raise AssertionError("the model was asked")

    with pytest.raises(DataError, match="temperature"):
        generate(never, tok, "abc", temperature=-1)
    with pytest.raises(DataError, match="stop string"):
        generate(never, tok, "abc", stop=[""])


def test_a_tiny_temperature_takes_the_likeliest_token() -> None:
    """A temperature so small that the scaled scores overflow picks greedily, not a crash."""
    from disco.text.generate import _choose

    scores = np.array([0.0, 3.0, 1.0])
    rng = np.random.default_rng(0)
    assert _choose(scores, 1e-310, None, rng) == 1
    assert _choose(scores, 1e-310, 2, rng) == 1
