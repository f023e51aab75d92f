"""tests/vectors/text_generation.json is what `disco.text.generate` gives today.

The browser's `generate.ts` reads the same file (web/tests/generate.test.ts): with the same
weights and greedy decoding both languages choose the same ids, piece for piece the same text.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from disco.models import ModelSpec, build_torch_model
from disco.text import Tokenizer
from disco.text.generate import generate, model_logits
from disco.weights import Weights

VECTORS = Path(__file__).parents[1] / "vectors"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("text_generation", VECTORS / "text_generation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_vectors_are_what_the_code_gives() -> None:
    assert _script().main(["--check"]) == 0


def test_greedy_ids_from_the_vector_weights() -> None:
    doc = json.loads((VECTORS / "text_generation.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(VECTORS / doc["tokenizer"])
    model = build_torch_model(ModelSpec.model_validate(doc["spec"]))
    model.set_weights(
        Weights(
            {
                w["name"]: np.asarray(w["values"], np.float32).reshape(w["shape"])
                for w in doc["weights"]
            }
        )
    )
    logits = model_logits(model)
    for case in doc["cases"]:
        chosen: list[int] = []

        def recording(ids: Any, chosen: list[int] = chosen) -> np.ndarray:
            scores = logits(ids)
            chosen.append(int(np.argmax(scores)))
            return scores

        text = "".join(
            generate(
                recording, tokenizer, case["prompt"], max_tokens=doc["max_tokens"],
                temperature=0.0, context=doc["context"],
            )
        )  # fmt: skip
        assert chosen == case["ids"]
        assert text == case["text"]
