"""Text in the browser, end to end: a person connects plays of Shakespeare as .txt files, trains
the shakespeare GPT together with two Python participants (`disco train`), ends with the server's
model, and lets it write on the "Try the model" page — its greedy text the same as Python's.

Kept short: each participant holds the openings of two of its plays (about 70 windows of 64
tokens: three batches an epoch), and the task runs 1 epoch cut into 3 rounds (the catalog task
cuts each epoch into 8): browser and Python train the same parts of their epochs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from disco import Weights, catalog
from disco.catalog import builtin_tokenizer
from disco.models import build_torch_model
from disco.server import ServerHandle
from disco.text.generate import generate, model_logits

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import train_with_python_participants  # noqa: E402

expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")
TASK = "shakespeare_together"
CHARACTERS = 6000
"""Characters kept of each play: its opening, cut at a line's end."""
PROMPT = "ROMEO:\n"


def _post_task(server: ServerHandle, token: str, doc: dict[str, Any], tokenizer: bytes) -> None:
    """Create a text task with its tokenizer (docs/text.md: the tokenizer travels as JSON text)."""
    body = json.dumps({"task": doc, "tokenizer": tokenizer.decode("utf-8")}).encode()
    req = urllib.request.Request(
        f"{server.url}/api/tasks",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.status == 201, res.status


@pytest.fixture(scope="module")
def text_task(server: ServerHandle, admin_token: str) -> str:
    """The shakespeare task in 3 rounds of a third of an epoch that wait for 3 participants."""
    doc = catalog.get("shakespeare").model_dump(mode="json")
    doc["id"] = TASK
    doc["display"]["title"] = "Shakespeare together"
    doc["training"].update(epochs=1, epochs_per_round=1, rounds_per_epoch=3, min_participants=3)
    tokenizer = builtin_tokenizer("shakespeare")
    assert tokenizer is not None
    _post_task(server, admin_token, doc, tokenizer.to_bytes())
    return TASK


@pytest.fixture(scope="module")
def plays(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Each of 3 participants' first two plays from `disco data samples`, opening scenes only."""
    root = tmp_path_factory.mktemp("shakespeare")
    subprocess.run(
        [str(DISCO), "data", "samples", "--task", "shakespeare", "--clients", "3",
         "--out", str(root / "all")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    out: dict[int, Path] = {}
    for k in (1, 2, 3):
        folder = root / f"p{k}"
        folder.mkdir()
        for play in sorted((root / "all" / f"client_{k}").glob("*.txt"))[:2]:
            text = play.read_text(encoding="utf-8")
            (folder / play.name).write_text(
                text[: text.rindex("\n", 0, CHARACTERS) + 1], encoding="utf-8"
            )
        out[k] = folder
    return out


def _download(page: Any, button: Any) -> bytes:
    with page.expect_download() as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def _python_greedy(weights: Weights, max_tokens: int) -> str:
    """What `disco.text.generate` writes after PROMPT with these weights, greedily."""
    task = catalog.get("shakespeare")
    tokenizer = builtin_tokenizer("shakespeare")
    assert tokenizer is not None
    model = build_torch_model(task.model)
    model.set_weights(weights)
    pieces = generate(
        model_logits(model), tokenizer, PROMPT, max_tokens=max_tokens, temperature=0.0,
        context=task.training.max_sequence_length or 64,
    )  # fmt: skip
    return "".join(pieces)


def test_browser_and_two_python_participants_train_shakespeare_and_the_browser_writes(
    phone: Any,
    desktop: Any,
    server: ServerHandle,
    text_task: str,
    plays: dict[int, Path],
    screenshot: Any,
    tmp_path: Path,
) -> None:
    page = phone
    page.goto(f"/#/tasks/{text_task}")
    expect(page.get_by_test_id("task-title")).to_have_text("Shakespeare together")
    screenshot(page, "text-about-phone")
    page.get_by_test_id("step-next").click()
    # a bad file among the plays is listed with its reason; the plays still count
    bad = tmp_path / "notes.txt"
    bad.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    mine = sorted(plays[3].glob("*.txt"))
    workers: list[str] = []
    page.on("worker", lambda worker: workers.append(worker.url))
    page.get_by_test_id("train-text-files").set_input_files([*mine, bad])
    summary = page.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("2", timeout=60_000)
    # the plays were tokenised off the page's thread (core/text/encodeText.ts), with the ids
    # Python gives: the digests below are equal only if the windows were
    assert any("encodeWorker" in url for url in workers), workers
    expect(summary.get_by_test_id("text-summary")).to_contain_text("training windows of 64 tokens")
    expect(page.get_by_test_id("train-problems")).to_contain_text(
        "notes.txt is not UTF-8 text (byte 3 is 0xe9): save it as UTF-8"
    )
    screenshot(page, "text-connected-phone")

    page.get_by_test_id("step-next").click()
    expect(page.get_by_label("With others")).to_be_checked()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=60_000)

    python_digests = train_with_python_participants(
        status, server.url, text_task, {k: plays[k] for k in (1, 2)},
        done_timeout_ms=400_000, exit_timeout_s=120,
    )  # fmt: skip

    expect(page.get_by_test_id("counter-round")).to_have_text("3 / 3")
    expect(page.get_by_test_id("counter-epoch")).to_have_text("1 · 3/3")
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("a round closed with 3 contributor(s)")
    expect(log).to_contain_text("your round 3 of 3, part 3 of 3 of epoch 1: loss")
    expect(log).to_contain_text("perplexity")
    expect(page.get_by_test_id("kept-accuracy")).to_contain_text("perplexity")
    expect(page.get_by_text("Perplexity (lower is better)")).to_be_visible()
    screenshot(page, "text-trained-together-phone")

    # the browser ends with the server's model, as the Python participants do
    with urllib.request.urlopen(f"{server.url}/api/tasks/{text_task}/model") as res:
        server_digest = res.headers["X-Disco-Digest"]
    page.get_by_test_id("step-next").click()
    expect(page.get_by_test_id("final-perplexity")).to_be_visible()
    downloaded = Weights.from_safetensors(_download(page, page.get_by_test_id("download-model")))
    assert downloaded.digest() == server_digest
    assert python_digests == {server_digest}
    screenshot(page, "text-finish-phone")

    # ... and lets it write: greedy, the same text as Python's generation with those weights
    page.get_by_test_id("try-model").click()
    expect(page.get_by_test_id("try-model-what")).to_contain_text("the model you trained")
    page.get_by_test_id("try-prompt").fill(PROMPT)
    page.get_by_text("Settings").click()
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("At most this many tokens").fill("30")
    page.get_by_test_id("try-write").click()
    expect(page.get_by_test_id("try-status")).to_contain_text("Done", timeout=60_000)
    written = page.get_by_test_id("try-generated").text_content()
    assert written, "the model wrote nothing"
    assert written == _python_greedy(downloaded, 30)
    # sampled, as a person would first try it
    page.get_by_label("Temperature").fill("0.8")
    page.get_by_label("At most this many tokens").fill("60")
    page.get_by_test_id("try-write").click()
    expect(page.get_by_test_id("try-status")).to_contain_text("Done", timeout=60_000)
    assert page.get_by_test_id("try-generated").text_content()
    screenshot(page, "text-try-phone")

    # saved to the library, it writes there too: the same greedy text from the same weights
    page.get_by_role("link", name="← Back to the task").click()
    page.get_by_test_id("save-model").click()
    expect(page.get_by_test_id("save-model")).to_have_text("Saved to your library")
    page.get_by_role("link", name="Open the library").click()
    entry = page.get_by_test_id("library-list").locator("article").first
    expect(entry).to_contain_text("Perplexity")
    screenshot(page, "text-library-phone")
    entry.get_by_test_id("library-try").click()
    expect(page.get_by_test_id("try-model-what")).to_contain_text("saved in your library")
    page.get_by_test_id("try-prompt").fill(PROMPT)
    page.get_by_text("Settings").click()
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("At most this many tokens").fill("30")
    page.get_by_test_id("try-write").click()
    expect(page.get_by_test_id("try-status")).to_contain_text("Done", timeout=60_000)
    assert page.get_by_test_id("try-generated").text_content() == written

    # a person on another device: no model there yet; the shared model is one click away
    other = desktop
    other.goto(f"/#/try/{text_task}")
    expect(other.get_by_test_id("try-no-model")).to_contain_text("No model to try yet")
    screenshot(other, "text-try-no-model-desktop")
    other.get_by_test_id("try-use-shared").click()
    expect(other.get_by_test_id("try-model-what")).to_contain_text("trained for 3 rounds")
    other.get_by_test_id("try-prompt").fill("To be, or not to be")
    other.get_by_text("Settings").click()
    other.get_by_label("At most this many tokens").fill("80")
    other.get_by_test_id("try-write").click()
    expect(other.get_by_test_id("try-status")).to_contain_text("Done", timeout=120_000)
    assert other.get_by_test_id("try-generated").text_content()
    screenshot(other, "text-try-desktop")
