"""An effect scheduled on the local stack survives a crash of the stack: its schedule is
in the local AWS's journal, and the restarted stack fires it when due. (A module of its
own: the local AWS is one per process, and this test runs two stacks in turn.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent_runtime.client import AgentClient
from agent_runtime.dev import LocalStack
from tests.e2e.conftest import AGENTS

DEADLINE = 30.0


def test_an_effect_scheduled_before_a_crash_fires_after_the_restart(tmp_path: Path) -> None:
    """The schedule lives in the local AWS's journal: the stack stops without a snapshot
    (as a killed one would), starts again on the same folder, and fires it when due."""
    state = tmp_path / "state"
    options: dict[str, Any] = {"port": 0, "state_dir": state, "agents_dir": str(AGENTS), "isolation": "process"}
    first = LocalStack(**options).start()
    try:
        sdk = AgentClient(first.url)
        receipt = sdk.dispatch("reminder", "R-1", {"text": "after the crash", "delay": 3})
        effect_id = sdk.wait("reminder", "R-1", receipt.submission_id, timeout=DEADLINE).result.text  # type: ignore[union-attr]
    finally:
        first.stop(save=False)
    second = LocalStack(**options).start()
    try:
        sdk = AgentClient(second.url)
        assert second.restored.replayed > 0, "the journal brought the writes back"
        deadline = time.monotonic() + DEADLINE
        # Fired, and its submission noted (the record is marked fired just before admission).
        while (effect := sdk.effects("reminder", "R-1").effects[0]).submission_id is None:
            assert time.monotonic() < deadline, f"{effect_id} never fired after the restart"
            time.sleep(0.1)
        assert effect.id == effect_id and effect.status == "fired"
        done = sdk.wait("reminder", "R-1", effect.submission_id, timeout=DEADLINE)
        assert done.result is not None and done.result.text == "nudged: after the crash"
    finally:
        second.stop()
