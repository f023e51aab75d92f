"""`disco train` against a real server on loopback: server-only tasks, --alone, schemes that
cannot run yet, stopping after waiting for the others, and what a participant prints."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import httpx
import pytest
from rich.progress import Progress

from disco.cli import Bars, main, participant_log
from disco.client import ClientResult, FederatedClient
from disco.errors import ServerError, WaitExpired
from disco.models import init_weights
from disco.protocol import RoundResult, Status, UpdateAck, Welcome
from disco.server import ServerConfig, ServerHandle, start_in_background
from disco.task import Task, parse_task
from disco.weights import Weights

TOKEN = "cli-test-token"


def _task_doc(task_id: str, **training: Any) -> dict[str, Any]:
    """A two-feature classifier (labels no/yes) that trains in a blink."""
    return {
        "id": task_id,
        "display": {"title": f"Task {task_id}"},
        "training": {
            "data_type": "tabular",
            "input_columns": [{"name": "a"}, {"name": "b"}],
            "output_column": "y",
            "labels": ["no", "yes"],
            "epochs": 4,
            "min_participants": 2,
            **training,
        },
        "model": {
            "input_shape": [2],
            "layers": [{"type": "dense", "units": 2, "activation": "softmax"}],
            "loss": "categorical_crossentropy",
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A real server holding tasks that exist only there: 'clinic', 'p2p' and 'solo'."""
    data_dir = tmp_path_factory.mktemp("server")
    config = ServerConfig(port=0, data_dir=data_dir, admin_token=TOKEN, seed_catalog=False)
    with start_in_background(config) as handle:
        docs = [
            _task_doc("clinic"),
            _task_doc("p2p", scheme="decentralized"),
            _task_doc("solo", scheme="local", min_participants=1),
        ]
        for doc in docs:
            resp = httpx.post(
                f"{handle.url}/api/tasks", json=doc, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert resp.status_code == 201, resp.text
        yield handle


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    """40 good rows and one with a bad cell (row 5)."""
    rows = [f"{i % 7 - 3},{(i * 5) % 11 - 5},{'yes' if i % 7 > 3 else 'no'}" for i in range(40)]
    rows.insert(3, "1,two,no")
    path = tmp_path / "mine.csv"
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _flat(text: str) -> str:
    """Console text with rich's line wrapping undone."""
    return " ".join(text.split())


def _json(stdout: str) -> dict[str, Any]:
    out = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(out, dict)
    return out


def test_a_server_task_without_server_suggests_it(
    csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--task", "clinic", "--data", str(csv_file)]) == 2
    err = _flat(capsys.readouterr().err)
    assert "unknown task 'clinic'" in err and "add --server URL" in err
    assert "Traceback" not in err


def test_alone_needs_a_server(csv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--task", "clinic", "--data", str(csv_file), "--alone"]) == 2
    assert "--alone trains a server's task alone: give the server with --server URL" in _flat(
        capsys.readouterr().err
    )


def test_alone_trains_the_server_task_without_joining(
    server: ServerHandle, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "clinic", "--data", str(csv_file), "--server", server.url]
    assert main([*argv, "--alone", "--rounds", "2", "--json"]) == 0
    captured = capsys.readouterr()
    out = _json(captured.out)
    assert out["task"] == "clinic" and out["rounds"] == 2 and out["bytes_up"] == 0
    assert out["samples"] + out["skipped_rows"] < 41 and out["skipped_rows"] == 1
    err = _flat(captured.err)
    assert "training alone (--alone): the task comes from the server; nothing is sent" in err
    assert "skipped 1 of 41 rows with a bad cell (40 rows loaded): row 5, column 'b'" in err
    model = httpx.get(f"{server.url}/api/tasks/clinic/model")
    assert model.headers["X-Disco-Round"] == "0"  # nothing reached the server


def test_max_wait_only_with_others(
    server: ServerHandle, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "clinic", "--data", str(csv_file), "--server", server.url]
    assert main([*argv, "--alone", "--max-wait", "5"]) == 2
    assert "--max-wait applies when training with others" in _flat(capsys.readouterr().err)


def test_decentralized_tasks_are_joined_as_a_peer_or_trained_alone(
    server: ServerHandle,
    csv_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    # the two peers run as threads of this process, where the warnings filters `disco train`
    # sets to report skipped rows are shared: give them rows without a bad cell
    clean = csv_file.with_name("clean.csv")
    clean.write_text(csv_file.read_text().replace("1,two,no\n", ""), encoding="utf-8")
    argv = ["train", "--task", "p2p", "--data", str(clean), "--server", server.url]
    peer = [*argv, "--rounds", "2", "--json", "--ice-host", "127.0.0.1", "--max-wait", "60"]
    codes: list[int] = []
    pair = [threading.Thread(target=lambda: codes.append(main(peer))) for _ in range(2)]
    for t in pair:  # the task needs two peers: two `disco train` in parallel
        t.start()
    for t in pair:
        t.join(timeout=120)
    assert codes == [0, 0]
    lines = [_json(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [s["rounds"] for s in lines] == [2, 2]
    assert lines[0]["digest"] == lines[1]["digest"]  # one model, bit for bit
    assert all(s["bytes_up"] > 0 for s in lines)

    assert main([*argv, "--alone", "--rounds", "1", "--json"]) == 0
    assert _json(capsys.readouterr().out)["rounds"] == 1


def test_a_task_trained_alone_by_design_does_not_join(
    server: ServerHandle, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "solo", "--data", str(csv_file), "--server", server.url]
    assert main([*argv, "--rounds", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert _json(captured.out)["bytes_up"] == 0
    err = _flat(captured.err)
    assert "training alone as task 'solo' is meant to be trained alone (scheme 'local')" in err


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """FederatedClient.run stops as after waiting in vain; records how the client was set up."""
    seen: dict[str, Any] = {}

    async def run(self: FederatedClient, rounds: int | None = None) -> ClientResult:
        seen["wait"] = self.wait_for_others_s
        seen["weights"] = weights = init_weights(self.task.model, seed=7)
        logging.getLogger("disco.client").info("your round 2 of %d: waiting for others", rounds)
        raise WaitExpired(
            "stopped waiting", weights=weights, kept=seen["kept"], rounds_done=1, shared_rounds=4
        )

    monkeypatch.setattr(FederatedClient, "run", run)
    seen["kept"] = "global"
    return seen


def test_wait_expired_saves_the_kept_model_and_exits_3(
    server: ServerHandle,
    csv_file: Path,
    tmp_path: Path,
    stopped: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clinic-model.safetensors").write_bytes(b"an earlier model")
    argv = ["train", "--task", "clinic", "--data", str(csv_file), "--server", server.url]
    code = main([*argv, "--max-wait", "42", "--test", str(csv_file), "--json"])
    captured = capsys.readouterr()
    assert code == 3
    assert stopped["wait"] == 42.0
    out = _json(captured.out)
    assert out["stopped"] == "wait_expired" and out["kept"] == "global"
    assert out["rounds"] == 1 and out["shared_rounds"] == 4
    assert isinstance(out["test_accuracy"], float)  # the kept model is still evaluated
    # the default file existed: it is left alone and the model goes next to it
    assert (tmp_path / "clinic-model.safetensors").read_bytes() == b"an earlier model"
    assert out["saved"] == "clinic-model-2.safetensors"
    saved = Weights.load(tmp_path / "clinic-model-2.safetensors")
    assert saved.digest() == stopped["weights"].digest() == out["digest"]
    err = _flat(captured.err)
    assert "no round closed within 42 s after your update" in err
    assert "Kept the last shared model (4 rounds of training with the others)" in err
    assert "saved to clinic-model-2.safetensors" in err
    # not a terminal: the participant's log lines are plain, with a time
    assert re.search(r"\d\d:\d\d:\d\d,\d{3} your round 2 of \d+: waiting for others", captured.err)


def test_wait_expired_with_save_and_the_local_model(
    server: ServerHandle,
    csv_file: Path,
    tmp_path: Path,
    stopped: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stopped["kept"] = "local"
    target = tmp_path / "mine.safetensors"
    argv = ["train", "--task", "clinic", "--data", str(csv_file), "--server", server.url]
    assert main([*argv, "--save", str(target)]) == 3
    assert Weights.load(target).digest() == stopped["weights"].digest()
    assert stopped["wait"] == 600.0  # the task's wait_for_others_s
    err = _flat(capsys.readouterr().err)
    assert "Kept the model trained on your data (nothing was combined" in err
    assert "stopped: wait_expired" in err and f"saved: {target}" in err  # the human summary


def test_participant_log_is_plain_in_a_pipe_and_quiet_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = logging.getLogger("disco.client")
    handlers = list(log.handlers)
    with participant_log(plain=True):
        log.info("joined task clinic")
    err = capsys.readouterr().err
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} joined task clinic\n", err)
    with participant_log(plain=False):
        log.info("your round 1 of 3: update sent")  # the progress bar shows this
        log.warning("connection lost; reconnecting")
    err = capsys.readouterr().err
    assert "update sent" not in err and err.count("connection lost; reconnecting") == 1
    assert log.handlers == handlers  # nothing left behind


def _clinic() -> Task:
    return parse_task(_task_doc("clinic"))


def test_bars_count_your_rounds_and_the_shared_models_apart() -> None:
    weights = init_weights(_clinic().model)
    with Progress(disable=True) as progress:
        bars = Bars(progress, ["you"], rounds=3, mine=True)

        def info() -> str:
            return str(progress.tasks[0].fields["info"])

        bars.on_message(
            1,
            Welcome(
                client_id="c1", task_id="clinic", round=5, weights=weights, participants=1,
                min_participants=2, state="waiting_for_participants",
            ),
        )  # fmt: skip
        assert info() == (
            "joined; shared model: 5 rounds before you; "
            "waiting for 1 more participant (1 of 2 connected)"
        )
        assert bars.joined_at == [5]
        status = Status(
            round=5, participants=1, min_participants=3, reported=0,
            state="waiting_for_participants",
        )  # fmt: skip
        bars.on_message(1, status)
        assert info() == "waiting for 2 more participants (1 of 3 connected)"
        bars.on_message(1, UpdateAck(round=5, reported=1, participants=2))
        assert info() == "your round 1 of 3 sent; 1 of 2 updates in, waiting for the others"
        result = RoundResult(round=6, weights=weights, contributors=2, num_samples=80)
        bars.on_message(1, result)
        assert info() == "your round 1 of 3 done (2 contributors); shared model: 6 rounds"
        assert progress.tasks[0].completed == 1
        for r in (7, 8):
            bars.on_message(1, result.model_copy(update={"round": r}))
        assert info() == "your round 3 of 3 done (2 contributors); shared model: 8 rounds"
        bars.on_message(1, status)  # the others leave after the end: the bar says done
        assert info() == "your round 3 of 3 done (2 contributors); shared model: 8 rounds"


def test_a_session_lost_after_training_saves_the_kept_model_and_exits_4(
    server: ServerHandle,
    csv_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trained: dict[str, Weights] = {}

    async def run(self: FederatedClient, rounds: int | None = None) -> ClientResult:
        trained["weights"] = init_weights(self.task.model, seed=3)
        self.rounds_done = 2
        monkeypatch.setattr(
            FederatedClient, "kept_model", lambda _self: ("global", trained["weights"], 5)
        )
        raise ServerError("cannot reach the server at ws://x/ws: connection refused")

    monkeypatch.setattr(FederatedClient, "run", run)
    target = tmp_path / "kept.safetensors"
    argv = ["train", "--task", "clinic", "--data", str(csv_file), "--server", server.url]
    assert main([*argv, "--save", str(target), "--json"]) == 4
    captured = capsys.readouterr()
    out = _json(captured.out)
    assert out["stopped"] == "session_lost" and out["rounds"] == 2 and out["shared_rounds"] == 5
    assert Weights.load(target).digest() == trained["weights"].digest()
    err = _flat(captured.err)
    assert "the session ended early: cannot reach the server at ws://x/ws" in err
    assert "Kept the last shared model (5 rounds" in err


def test_a_session_lost_before_any_training_is_a_plain_error(
    server: ServerHandle,
    csv_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def run(self: FederatedClient, rounds: int | None = None) -> ClientResult:
        raise ServerError("cannot reach the server at ws://x/ws: connection refused")

    monkeypatch.setattr(FederatedClient, "run", run)
    argv = ["train", "--task", "clinic", "--data", str(csv_file), "--server", server.url]
    assert main(argv) == 2
    assert "cannot reach the server" in _flat(capsys.readouterr().err)
