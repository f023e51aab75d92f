"""`disco publish` and `disco data tokenizer` against a real server on loopback: a text task of
one's own goes from text files to a task participants can join, its tokenizer stored byte for
byte; a task without its tokenizer, with another one, with a wrong admin token or an id already
taken is refused with one clear line, and the server is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from loopback import TOKEN

from disco import catalog
from disco.cli import main
from disco.client.publish import publish, read_task
from disco.errors import ServerError, TaskError
from disco.models import architectures as arch
from disco.server import ServerHandle
from disco.task import Task
from disco.text import Tokenizer, save_task_folder, train_tokenizer

LETTERS = {
    "letters/1.txt": "Dear Anna,\nThe garden is full of roses this year, and the pear tree too.\n",
    "letters/2.txt": "Dear Paul,\nThe roses are in bloom; come and see the garden soon.\n",
    "letters/notes/3.txt": "The pear tree gave forty pears. Anna says the roses smell of tea.\n",
}


def _letters(tmp_path: Path) -> Path:
    for name, text in LETTERS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text * 20, encoding="utf-8")
    return tmp_path / "letters"


def _text_doc(vocab: int | None) -> dict[str, object]:
    """A text task's document as a person writes it: no tokenizer digest yet."""
    training: dict[str, object] = {"data_type": "text", "max_sequence_length": 16, "epochs": 2}
    if vocab is not None:
        training["vocab_size"] = vocab
    model = arch.gpt(vocab or 300, 16, d_model=16, layers=1, heads=2, dropout=0.0)
    return {
        "id": "letters",
        "display": {"title": "Letters"},
        "training": training,
        "model": model.model_dump(mode="json"),
    }


def _output(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr()
    return " ".join((out.out + out.err).split())


def _ids(server: ServerHandle) -> list[str]:
    return [t["id"] for t in httpx.get(f"{server.url}/api/tasks").json()]


def test_a_text_task_goes_from_text_files_to_a_server(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = _letters(tmp_path)
    tok_file = tmp_path / "tokenizer.json"
    learn = ["data", "tokenizer", "--text", str(letters), "--vocab-size", "300"]
    assert main([*learn, "--out", str(tok_file)]) == 0
    tokenizer = Tokenizer.from_file(tok_file)
    said = _output(capsys)
    assert f"wrote {tok_file}: byte-level BPE of {tokenizer.vocab_size} tokens" in said
    assert "learnt from 3 document(s)" in said
    assert f"SHA-256 {tokenizer.digest}" in said
    # the same texts give the same bytes; an existing file is kept unless told
    assert main([*learn, "--out", str(tok_file)]) == 2
    assert "exists: choose another --out, or add --overwrite" in _output(capsys)
    assert main([*learn, "--out", str(tok_file), "--overwrite", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tokenizer_digest"] == tokenizer.digest and summary["documents"] == 3

    task_file = tmp_path / "letters.json"
    task_file.write_text(json.dumps(_text_doc(vocab=None)), encoding="utf-8")
    common = ["--server", server.url, "--admin-token", TOKEN]
    assert main(["publish", str(task_file), "--tokenizer", str(tok_file), *common]) == 0
    assert "created task 'letters' (Letters; text, federated, 2 rounds)" in _output(capsys)
    made = httpx.get(f"{server.url}/api/tasks/letters").json()
    assert made["training"]["tokenizer_digest"] == tokenizer.digest
    assert made["training"]["vocab_size"] == tokenizer.vocab_size
    stored = httpx.get(f"{server.url}/api/tasks/letters/tokenizer")
    assert stored.status_code == 200 and stored.content == tok_file.read_bytes()

    # the same id again: the server's words, the task as it was
    assert main(["publish", str(task_file), "--tokenizer", str(tok_file), *common]) == 2
    assert "a task with id 'letters' already exists (HTTP 409)" in _output(capsys)
    assert httpx.get(f"{server.url}/api/tasks/letters").json() == made


def test_what_is_refused_before_the_server_is_asked(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = _letters(tmp_path)
    tokenizer = train_tokenizer((p.read_text() for p in sorted(letters.rglob("*.txt"))), 300)
    task = read_task_with(tmp_path, tokenizer)
    folder = save_task_folder(tmp_path / "task", task, tokenizer)
    common = ["--server", server.url, "--admin-token", TOKEN]

    (folder / "tokenizer.json").rename(tmp_path / "kept.json")
    assert main(["publish", str(folder), *common]) == 2
    assert "task 'letters' is a text task but tokenizer.json is missing" in _output(capsys)
    other = train_tokenizer(["Something else entirely, written once or twice."] * 3, 280)
    other.save(tmp_path / "other.json")
    assert main(["publish", str(folder), "--tokenizer", str(tmp_path / "other.json"), *common]) == 2
    assert "this tokenizer.json is not task 'letters''s" in _output(capsys)
    mnist = save_task_folder(tmp_path / "mnist", catalog.get("mnist"))
    assert main(["publish", str(mnist), "--tokenizer", str(tmp_path / "kept.json"), *common]) == 2
    assert "task 'mnist' is not a text task: it takes no tokenizer" in _output(capsys)
    assert main(["publish", str(tmp_path / "nowhere.json"), *common]) == 2
    assert "nowhere.json: cannot read the task" in _output(capsys)
    # a text task's document without a tokenizer: what to add, in the command's words
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(_text_doc(vocab=None)), encoding="utf-8")
    assert main(["publish", str(bare), *common]) == 2
    assert "task 'letters' is a text task: give its tokenizer.json too" in _output(capsys)
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    assert main(["publish", str(tmp_path / "broken.json"), *common]) == 2
    assert "broken.json: task is not valid JSON" in _output(capsys)
    # where the tokenizer cannot be written: said before any text is read
    learn = ["data", "tokenizer", "--text", str(tmp_path / "letters"), "--out", str(tmp_path)]
    assert main(learn) == 2
    assert "is a folder: give the file to write" in _output(capsys)
    assert _ids(server) == []


def read_task_with(tmp_path: Path, tokenizer: Tokenizer) -> Task:
    """The letters task, its tokenizer named by `read_task` from a document without one."""
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(_text_doc(vocab=tokenizer.vocab_size)), encoding="utf-8")
    tokenizer.save(tmp_path / "tok.json")
    task, tok = read_task(doc, tmp_path / "tok.json")
    assert tok is not None and tok.digest == tokenizer.digest
    return task


def test_the_admin_token_is_checked_and_a_folder_publishes(
    server: ServerHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    titanic = catalog.get("titanic")
    folder = save_task_folder(tmp_path / "titanic", titanic)
    assert main(["publish", str(folder), "--server", server.url, "--admin-token", "wrong"]) == 2
    assert "did not create task 'titanic'" in (said := _output(capsys))
    assert "is this the server's admin token?" in said
    assert main(["publish", str(folder), "--server", server.url]) == 2
    assert "(HTTP 401) — give the server's admin token" in _output(capsys)
    assert _ids(server) == []
    # an invitation in the environment is a participant's, never read to publish
    monkeypatch.setenv("DISCO_INVITATION", "not an invitation")
    # a tokenizer.json left in a folder counts only for a text task
    train_tokenizer(["A few words, written for a tokenizer."] * 3, 270).save(
        folder / "tokenizer.json"
    )
    assert main(["publish", str(folder), "--server", server.url, "--admin-token", TOKEN]) == 0
    monkeypatch.delenv("DISCO_INVITATION")
    assert main(["tasks", "--server", server.url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["tasks"]
    assert [Task.model_validate(t) for t in listed] == [titanic]


def test_the_python_api_publishes_and_checks_the_pair(server: ServerHandle, tmp_path: Path) -> None:
    letters = _letters(tmp_path)
    tokenizer = train_tokenizer((p.read_text() for p in sorted(letters.rglob("*.txt"))), 300)
    task = read_task_with(tmp_path, tokenizer)
    with pytest.raises(TaskError, match="publish it with its tokenizer"):
        publish(server.url, task, admin_token=TOKEN)
    assert publish(server.url, task, tokenizer=tokenizer, admin_token=TOKEN) == task
    with pytest.raises(ServerError, match="already exists"):
        publish(server.url, task, tokenizer=tokenizer, admin_token=TOKEN)
    with pytest.raises(ServerError, match=r"cannot reach the server at http://127\.0\.0\.1:9"):
        publish("http://127.0.0.1:9", catalog.get("mnist"), admin_token=TOKEN, timeout=5)
