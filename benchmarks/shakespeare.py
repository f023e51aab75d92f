"""The shakespeare task end to end: does the small GPT learn, how fast, and does it write words?

One run measures what issue 12 asks of the catalog task `shakespeare`:

* **learning** — `disco.simulate("shakespeare", 3)` (3 participants, the task's own plan: 2 epochs
  cut into 8 rounds each) gives the final model's loss on the 3 held-out plays and, on the same
  tokens, the loss of the add-one smoothed unigram model of the participants' training tokens.
  Goal: at least 1.5 nats below the unigram model.
* **time** — the simulation's wall time and the CPU time of this process (everything runs in
  it: server, participants, one PyTorch thread). Goal: within 10 minutes on this machine; the
  CPU time is what an idle machine's wall time would be, the wall time what this one gave.
* **words** — 500 tokens generated from each of a few prompts (the defaults of `disco generate`:
  temperature 0.8, top-k 40), split on whitespace; the share of those words (punctuation
  around a word kept, as written) that occur as whitespace-separated words in the training
  plays. Goal: at least 80%. Also shown: the share once the punctuation around each word is
  taken off, on both sides ("lord," is the word "lord").

    .venv/bin/python benchmarks/shakespeare.py [--model FILE] [--save FILE] [--tokens 500]
        [--seeds 5]

With ``--model`` (a model saved by ``disco simulate --task shakespeare --save FILE``, or by
``--save``) the simulation is skipped and only the words are measured.
"""

from __future__ import annotations

import argparse
import resource
import string
import time
from pathlib import Path

import torch

from disco import catalog
from disco.catalog.shakespeare import tokenizer
from disco.data.shakespeare import training_works
from disco.models import build_torch_model
from disco.simulation import simulate
from disco.text import generate, model_logits
from disco.weights import Weights

PROMPTS = ("ROMEO.\n", "KING.\n", "To be", "Enter", "My lord,")
GOAL_NATS = 1.5
GOAL_WORDS = 0.8
GOAL_S = 600.0
PUNCTUATION = string.punctuation + "‘’“”—"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def learn() -> tuple[Weights, dict[str, float]]:
    """Simulate the task with 3 participants; its losses and times."""
    wall, cpu = time.perf_counter(), _cpu_s()
    result = simulate("shakespeare", 3, None, seed=0)
    assert result.unigram_loss is not None and result.weights is not None
    return result.weights, {
        "rounds": result.rounds,
        "test_loss": result.test_loss,
        "unigram_loss": result.unigram_loss,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": _cpu_s() - cpu,
    }


def known_words() -> set[str]:
    """Every whitespace-separated word of the training plays, as written and bare."""
    written = {w for work in training_works() for w in work.text.split()}
    return written | {w.strip(PUNCTUATION) for w in written}


def words(weights: Weights, tokens: int, seeds: int) -> list[tuple[str, int, int, int, int, int]]:
    """(prompt, seed, words, known as written, bare words, known bare) of each generated text."""
    task = catalog.get("shakespeare")
    model = build_torch_model(task.model)
    model.set_weights(weights)
    logits, tok, known = model_logits(model), tokenizer(), known_words()
    rows = []
    for seed in range(seeds):
        prompt = PROMPTS[seed % len(PROMPTS)]
        text = "".join(generate(logits, tok, prompt, max_tokens=tokens, seed=seed))
        written = text.split()
        bare = [b for b in (w.strip(PUNCTUATION) for w in written) if b]
        hits, bare_hits = sum(w in known for w in written), sum(b in known for b in bare)
        rows.append((prompt, seed, len(written), hits, len(bare), bare_hits))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a saved shakespeare model: skip training")
    parser.add_argument("--save", type=Path, help="save the simulation's model there")
    parser.add_argument("--tokens", type=int, default=500, help="tokens generated per text")
    parser.add_argument("--seeds", type=int, default=5, help="texts generated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model is None:
        weights, run = learn()
        if args.save is not None:
            weights.save(args.save)
        below = run["unigram_loss"] - run["test_loss"]
        print(
            "| rounds | test loss | unigram loss | below unigram (goal ≥ 1.5) | wall "
            "| CPU (goal ≤ 600 s) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {run['rounds']:.0f} | {run['test_loss']:.3f} | {run['unigram_loss']:.3f} | "
            f"**{below:.2f}** {'met' if below >= GOAL_NATS else 'NOT met'} | "
            f"{run['wall_s']:.0f} s | {run['cpu_s']:.0f} s "
            f"{'met' if run['cpu_s'] <= GOAL_S else 'NOT met'} |"
        )
    else:
        weights = Weights.load(args.model)
    rows = words(weights, args.tokens, args.seeds)
    print()
    print(
        f"| prompt | seed | words in {args.tokens} tokens | in the training plays "
        "| without punctuation around them |"
    )
    print("|---|---:|---:|---:|---:|")
    for prompt, seed, n, known, nb, known_bare in rows:
        print(f"| {prompt!r} | {seed} | {n} | {known / n:.1%} | {known_bare / nb:.1%} |")
    total, hits = sum(r[2] for r in rows), sum(r[3] for r in rows)
    bare, bare_hits = sum(r[4] for r in rows), sum(r[5] for r in rows)
    verdict = "met" if hits / total >= GOAL_WORDS else "NOT met"
    print(
        f"| all | | {total} | **{hits / total:.1%}** (goal ≥ 80%: {verdict}) "
        f"| {bare_hits / bare:.1%} |"
    )


if __name__ == "__main__":
    main()
