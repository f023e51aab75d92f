"""Text generation: a trained language model continues a prompt, token by token, as a stream.

`generate` takes the model as a **logits function** — token ids in, one score per vocabulary
token for the next token out — so that any model fits: a text task's PyTorch model
(`model_logits`), or a table in a test. The rules, the same in the web's "Try the model" page:

- **The prompt** is encoded after the end-of-text token: a prompt starts a new text, as each
  document does in the training windows (docs/text.md). An empty prompt lets the model begin.
- **Context**: the model sees the last `context` tokens (prompt and generated ones), the most
  it was trained to read.
- **Choosing the next token**: ``temperature == 0`` takes the most likely token (ties: the
  lowest id); otherwise scores are divided by the temperature, all but the `top_k` highest are
  dropped (``top_k`` None or 0: none dropped; ties at the cut are kept), and a token is drawn from
  the softmax with a generator seeded by `seed` — the same seed, model and prompt give the same
  text.
- **Stopping**: after `max_tokens` tokens; when the model produces the end-of-text token (not
  shown); or when the text produced contains one of the `stop` strings — the text stops just
  before it.
- **Streaming**: pieces of text come as soon as they are certain: a token that ends inside a
  character (byte-level BPE may split one) waits for the rest, and text that could be the start
  of a stop string waits until it cannot. The pieces joined are the whole generated text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from disco.errors import DataError
from disco.text.tokenizer import Tokenizer

if TYPE_CHECKING:
    from disco.models import TorchModel

__all__ = ["LogitsFn", "generate", "model_logits"]

LogitsFn = Callable[[Sequence[int]], np.ndarray]
"""Token ids (at most the context) → scores of the next token, shape ``(vocab_size,)``."""

_REPLACEMENT = "\ufffd"


def model_logits(model: TorchModel) -> LogitsFn:
    """The logits function of a text task's PyTorch model (ids → the last position's logits);
    it reads at most the model's context, the last ids."""
    import torch

    context = int(model.spec.input_shape[0])

    def logits(ids: Sequence[int]) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            window = list(ids)[-context:]
            out = model(torch.tensor([window], dtype=torch.long))  # (1, T) -> (1, T, V)
        return np.asarray(out[0, -1].double().numpy())

    return logits


def _check(
    max_tokens: int,
    temperature: float,
    top_k: int | None,
    context: int | None,
    stop: Sequence[str],
) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise DataError(f"max_tokens must be a whole number, at least 0; got {max_tokens!r}")
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise DataError(
            f"temperature must be 0 (always the likeliest token) or more; got {temperature}"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise DataError(f"top_k must be a whole number (0: no limit); got {top_k!r}")
    if context is not None and context < 1:
        raise DataError(f"the context must be at least 1 token; got {context}")
    if any(not s for s in stop):
        raise DataError("a stop string cannot be empty")


def _choose(
    scores: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> int:
    """The next token id from the scores (the module's rule)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(scores).all():
        raise DataError("the model gave scores that are not finite numbers")
    if temperature == 0:
        return int(np.argmax(scores))
    with np.errstate(over="ignore"):
        scaled = scores / temperature
    if not np.isfinite(scaled).all():  # a temperature so small the scores overflow: greedy
        return int(np.argmax(scores))
    if top_k and top_k < len(scaled):
        cut = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= cut, scaled, -np.inf)
    p = np.exp(scaled - scaled.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def _held(text: str, stop: Sequence[str]) -> int:
    """How many characters at the end of `text` must wait: the start of a stop string, or a
    character whose bytes are not all there yet."""
    hold = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:n]):
                hold = n
                break
    if text.endswith(_REPLACEMENT):
        hold = max(hold, len(text) - len(text.rstrip(_REPLACEMENT)))
    return hold


def generate(
    logits: LogitsFn,
    tokenizer: Tokenizer,
    prompt: str = "",
    *,
    max_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 40,
    stop: Sequence[str] = (),
    seed: int = 0,
    context: int | None = None,
) -> Iterator[str]:
    """Continue `prompt` with the model `logits` (`model_logits(model)` for a PyTorch model),
    yielding the new text piece by piece (the module's rules).

    ``"".join(generate(...))`` is the whole continuation. `context`, when given, is how many of
    the last ids the model is shown (None: all; `model_logits` keeps its model's context);
    `stop` strings end the text before them. Bad settings and a prompt that cannot be encoded
    are refused here, before any text is made.
    """
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    _check(max_tokens, temperature, top_k, context, stop)
    ids = [tokenizer.eot_id, *tokenizer.encode(prompt)]
    return _stream(logits, tokenizer, ids, max_tokens, temperature, top_k, stop, seed, context)


def _stream(
    logits: LogitsFn,
    tokenizer: Tokenizer,
    ids: list[int],
    max_tokens: int,
    temperature: float,
    top_k: int | None,
    stop: tuple[str, ...],
    seed: int,
    context: int | None,
) -> Iterator[str]:
    """The continuation of `ids`, piece by piece (`generate`)."""
    rng = np.random.default_rng(seed)
    made: list[int] = []
    sent = 0  # characters of the generated text already yielded
    text = ""
    for _ in range(max_tokens):
        shown = ids if context is None else ids[-context:]
        next_id = _choose(logits(shown), temperature, top_k, rng)
        if not 0 <= next_id < tokenizer.vocab_size:
            raise DataError(f"the model chose token {next_id}, outside the vocabulary")
        if next_id == tokenizer.eot_id:
            break
        ids.append(next_id)
        made.append(next_id)
        text = tokenizer.decode(made)
        hits = [i for i in (text.find(s, max(0, sent - len(s))) for s in stop) if i >= 0]
        if hits:
            end = min(hits)
            if end > sent:
                yield text[sent:end]
            return
        ready = len(text) - _held(text, stop)
        if ready > sent:
            yield text[sent:ready]
            sent = ready
    if len(text) > sent:  # the end: what waited is final (a half character stays U+FFFD)
        yield text[sent:]
