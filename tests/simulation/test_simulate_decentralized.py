"""`disco simulate --scheme decentralized`: real peers, the server only paces them."""

from __future__ import annotations

import aioice.ice
import pytest

from disco.errors import ConfigError
from disco.simulation import simulate


@pytest.mark.parametrize("transport", ["memory", "webrtc"])
def test_peers_train_a_task_together_and_end_with_one_model(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    result = simulate("breast_cancer", 3, 2, scheme="decentralized", transport=transport)

    assert result.rounds == 2 and result.test_accuracy is not None
    assert result.test_accuracy > 0.85
    assert [h["round"] for h in result.history] == [0, 1]
    assert all(h["contributors"] == 3 and h["digest"] for h in result.history)
    assert result.history[-1]["digest"] == result.digest  # the peers' agreed model
    assert result.bytes_up > 0


def test_attacks_are_simulated_in_federated_sessions_only() -> None:
    with pytest.raises(ConfigError, match="federated sessions only"):
        simulate("breast_cancer", 3, 1, scheme="decentralized", attack="sign_flip:1")
