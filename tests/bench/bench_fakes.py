"""Stand-ins for the benchmark tests, importable by subprocesses as `bench_fakes:<factory>` (the
tests put this folder on PYTHONPATH). Not collected by pytest (no test_ prefix)."""

from __future__ import annotations

import os
import time
import zlib

import numpy as np

from spiral.errors import AgentUnavailable, SpiralError
from spiral.types import Clip, Plan, Step
from spiral.worldmodels.base import prepare_frame
from spiral.worlds.tabletop.actions import apply, precondition_errors, sample_target
from spiral.worlds.tabletop.episodes import ground_truth_clip
from spiral.worlds.tabletop.grammar import parse
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.solver import PlannedStep


class SimWorldModel:
    """Carries out a step instruction in the tabletop simulator, from the scene it reads off the
    frame; with probability `fail_rate` (drawn from the seed and the frame, so deterministic)
    nothing moves. Goals given as one prompt (oneshot) are not steps: nothing moves."""

    name = "sim"

    def __init__(self, frame_size: int = 64, num_frames: int = 8, fail_rate: float = 0.35, delay: float = 0.0):
        self.frame_size, self.num_frames, self.fail_rate, self.delay = frame_size, num_frames, fail_rate, delay
        self.calls = 0

    def generate(self, frame, instruction, *, num_frames=None, seed=0, context=None):
        self.calls += 1
        n = num_frames or self.num_frames
        frame = prepare_frame(frame, self.frame_size)
        rng = np.random.default_rng([seed, zlib.crc32(frame.tobytes())])
        frames = np.repeat(frame[None], n, axis=0)
        if rng.random() >= self.fail_rate:
            try:
                action = parse(instruction)
            except SpiralError:
                action = None
            scene = read_scene(frame)
            target = None if action is None or precondition_errors(scene, action) else sample_target(scene, action, rng)
            if target is not None:
                frames = ground_truth_clip(PlannedStep(action, target, scene, apply(scene, action, target)), n, self.frame_size)
                frames[0] = frame  # a clip starts on the frame it was given
        if self.delay:
            time.sleep(self.delay)
        return Clip(frames, instruction, seed, self.name)


def sim_world_model():
    return SimWorldModel()


def slow_sim_world_model():
    """For the kill -9 test: slow enough that the kill lands mid-run."""
    return SimWorldModel(delay=float(os.environ.get("SIM_DELAY", "0.05")))


def perfect_world_model():
    return SimWorldModel(fail_rate=0.0)


class FailingPlanner:
    """A planner whose backend is down: every call is a SpiralError."""

    name = "failing"

    def reset(self, goal, frame):
        pass

    def plan(self, goal, frame, memory) -> Plan:
        raise SpiralError("the planner server is unreachable")


def failing_planner():
    return FailingPlanner()


class DownPlanner:
    """A planner whose server is down while the file $PLANNER_DOWN exists; the symbolic planner otherwise."""

    name = "down"

    def __init__(self):
        from spiral.agents.plan.symbolic import SymbolicPlanAgent

        self.inner = SymbolicPlanAgent()

    def reset(self, goal, frame):
        self.inner.reset(goal, frame)

    def plan(self, goal, frame, memory) -> Plan:
        if os.path.exists(os.environ["PLANNER_DOWN"]):
            if os.environ.get("PLANNER_FAILURE") == "memory":  # the machine ran out of memory
                raise MemoryError("cannot allocate 8.0 GiB")
            raise AgentUnavailable("the chat server at http://127.0.0.1:9/v1 could not be used after 5 tries: HTTP 500")
        return self.inner.plan(goal, frame, memory)


def down_planner():
    return DownPlanner()


def tiny_tabletop():
    """The real tabletop world model, randomly initialised and tiny (no trained weights needed),
    with word vectors in place of the sentence encoder, whose import alone takes seconds."""
    import torch

    from spiral.worldmodels.tabletop import TabletopWorldModel
    from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
    from spiral.worldmodels.text import EMBED_DIM, TextEncoder

    class WordVectors(TextEncoder):
        def _encode_one(self, text: str) -> torch.Tensor:
            words = text.split()[: self.max_tokens] or [""]
            rows = [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(EMBED_DIM) for w in words]
            return torch.from_numpy(np.stack(rows).astype(np.float32))

    torch.manual_seed(0)
    net = TabletopNet(TabletopNetConfig(dim=32, depth=1, heads=2))
    torch.nn.init.normal_(net.out.weight, std=0.05)
    return TabletopWorldModel(net, text=WordVectors())


class StillWorldModel:
    """Real footage stand-in: every clip holds the start frame still."""

    name, frame_size, num_frames = "still", 64, 8

    def generate(self, frame, instruction, *, num_frames=None, seed=0, context=None):
        frame = prepare_frame(frame, self.frame_size)
        return Clip(np.repeat(frame[None], num_frames or self.num_frames, axis=0), instruction, seed, self.name)


def still_world_model():
    return StillWorldModel()


class TwoStepPlanner:
    name = "two-step"

    def reset(self, goal, frame):
        pass

    def plan(self, goal, frame, memory) -> Plan:
        if len(memory.accepted) == 2:  # the loop's goal check after both steps: done
            return Plan(goal, (), "the cup is in the sink", self.name)
        steps = (Step("pick up the cup", "cup"), Step("put the cup in the sink", "cup", ("sink",)))
        return Plan(goal, steps, "first the cup, then the sink", self.name)


def two_step_planner():
    return TwoStepPlanner()


class AnsweringServer:
    """An OpenAI-compatible chat server on 127.0.0.1 that gives every request the same answer."""

    def __init__(self, content: str):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}], "usage": {"total_tokens": 120}})
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
