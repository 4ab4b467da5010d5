"""The openai agents against a real OpenAI-compatible server process: `transformers serve` on a free
local port, serving a tiny randomly initialised chat model built here, offline.

That server ignores `response_format` (with a warning), as many do: this shows that asking for
structured output does not break such a server, and that the text fallback and the error path work
over real HTTP. The tiny model writes nonsense, so the honest outcome is a clean AgentOutputError,
and in `spiral run` a plan_error with no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
from transformers.utils.import_utils import is_serve_available  # noqa: E402

if not is_serve_available():
    pytest.skip(
        "`transformers serve` needs fastapi, uvicorn, pydantic and openai: pip install -e '.[dev]'", allow_module_level=True
    )

from tiny_chat import save_tiny_chat_model  # noqa: E402

from spiral.agents.chat import ChatConfig  # noqa: E402
from spiral.agents.critic.openai import OpenAICriticAgent  # noqa: E402
from spiral.agents.parsing import AgentOutputError  # noqa: E402
from spiral.agents.plan.openai import OpenAIPlanAgent  # noqa: E402
from spiral.memory import ObjectState, WorldMemory  # noqa: E402
from spiral.types import Clip, Step  # noqa: E402

pytestmark = pytest.mark.slow
# Offline, and no update check or telemetry: the server must not reach beyond this machine.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
       "OMP_NUM_THREADS": "1", "NO_PROXY": "*"}  # fmt: skip
GOAL = "put the green triangle on the yellow square"
ANSWERED = '"POST /v1/chat/completions HTTP/1.1" 200'


@dataclass(frozen=True)
class Served:
    url: str
    model: str  # the folder, which is also the name the server knows the model by
    log: Path

    def answered(self) -> int:
        return self.log.read_text().count(ANSWERED)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model = save_tiny_chat_model(tmp_path_factory.mktemp("served-model"))
    log, port = model.parent / "serve.log", free_port()
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu"]  # fmt: skip
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as health:
                    if health.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        yield Served(f"http://127.0.0.1:{port}/v1", str(model), log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def memory() -> WorldMemory:
    m = WorldMemory(goal=GOAL)
    m.set_objects([ObjectState("green triangle", 0.2, 0.3), ObjectState("yellow square", 0.7, 0.6)])
    return m


def test_the_openai_agents_ask_a_real_server_and_give_up_cleanly_on_nonsense(served, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "*")
    config = ChatConfig(served.url, served.model, api_key_env="", max_repairs=1, max_tokens=48, timeout_s=30)
    before = served.answered()
    planner = OpenAIPlanAgent(config)
    with pytest.raises(AgentOutputError) as info:
        planner.plan(GOAL, np.zeros((32, 32, 3), np.uint8), memory())
    assert info.value.attempts == 2 and info.value.tokens > 0 and info.value.reason  # two real answers, parsed as text
    critic = OpenAICriticAgent(config, key_frames=2)
    with pytest.raises(AgentOutputError):
        critic.critique(Step(GOAL, "green triangle"), Clip(np.zeros((3, 32, 32, 3), np.uint8), GOAL, 0, "t"), memory())
    # Every request carried the schema and was answered: the server took the field (and ignored it).
    assert served.answered() - before == 4 and planner.client.structured and critic.client.structured
    assert "response_format" in served.log.read_text()


def test_spiral_run_with_an_api_planner_and_the_learned_critic_ends_in_a_clean_plan_error(served, tmp_path):
    """--agent-model names the served model: the learned critic beside it keeps its own weights."""
    run = subprocess.run(
        [sys.executable, "-m", "spiral.cli", "run", "--goal", "clear the left side", "--scene-seed", "1",
         "--planner", "openai", "--critic", "learned", "--agent-model", served.model, "--base-url", served.url,
         "--api-key-env", "", "--max-generations", "2", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=ENV, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "plan_error" in run.stdout and "stopped: the model gave no usable answer in 3 tries" in run.stdout
    assert "Traceback" not in run.stderr and (tmp_path / "run" / "summary.json").is_file()
