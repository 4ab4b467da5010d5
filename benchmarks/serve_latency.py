"""How long `spiral serve` takes from pressing Run (the POST) to the first plan on the page's event
stream, and to the first clip, on the defaults of `spiral run` (lm planner, learned critic, the
shipped tabletop world model); both include starting the `spiral run` subprocess and loading its models.

    .venv/bin/python benchmarks/serve_latency.py [--scene-seed 4] [--goal TEXT] [--repeat 3]

The server is started as a person would (`spiral serve --port 0`), on a temporary root; each run is
cancelled once its first clip is on the stream, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

from spiral.demo import demo_request


def post(where, path: str, body: dict) -> dict:
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise SystemExit(f"the server refused the run: {answer.get('error')}")
    return answer


def first_plan_and_clip(where, run_id: str, pressed: float, limit: float) -> dict[str, float]:
    """Seconds from `pressed` to the first plan and the first clip on the run's event stream."""
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=limit)
    connection.request("GET", f"/api/runs/{run_id}/events")
    stream = connection.getresponse()
    seconds: dict[str, float] = {}
    for raw in stream:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        event = json.loads(line[len("data: ") :])
        if event["type"] in ("plan", "clip") and event["type"] not in seconds:
            seconds[event["type"]] = time.perf_counter() - pressed
        if event["type"] == "end":
            raise SystemExit(
                f"the run ended before its first clip: {event.get('status') or event['state']} {event.get('error', '')}"
            )
        if "clip" in seconds:
            break
    connection.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene-seed", type=int, default=4)
    parser.add_argument("--goal", default=None, help="default: a canonical medium goal of the scene (the judge reads it)")
    parser.add_argument("--repeat", type=int, default=3, help="runs, one after another (each loads its models afresh)")
    parser.add_argument("--limit", type=float, default=600, help="seconds a run may take to show its first clip")
    args = parser.parse_args()
    goal = args.goal or demo_request(args.scene_seed, "medium").judge
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as root:
        server = subprocess.Popen([sys.executable, "-m", "spiral.cli", "serve", "--port", "0", "--root", root],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
        try:
            found = re.search(r"http://\S+/", server.stdout.readline())
            if found is None:
                raise SystemExit(f"spiral serve did not start: {server.stdout.read()}")
            where = urlsplit(found.group(0))
            print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}")
            print(f"goal: {goal!r} on scene {args.scene_seed}; lm planner, learned critic, shipped tabletop world model")
            runs = []
            for i in range(args.repeat):
                pressed = time.perf_counter()
                run = post(where, "/api/runs", {"goal": goal, "scene_seed": args.scene_seed})
                runs.append(first_plan_and_clip(where, run["id"], pressed, args.limit))
                post(where, f"/api/runs/{run['id']}/cancel", {})
                print(f"run {i + 1}: Run -> plan on the stream {runs[-1]['plan']:.2f} s, -> first clip {runs[-1]['clip']:.2f} s")
            plan, clip = (statistics.median(r[kind] for r in runs) for kind in ("plan", "clip"))
            print(f"median of {len(runs)}: Run -> plan {plan:.2f} s, Run -> first clip {clip:.2f} s")
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(60)
    print(f"server stopped on SIGTERM: exit code {code}")
    if code != 0:
        raise SystemExit(f"spiral serve did not stop cleanly (exit code {code})")


if __name__ == "__main__":
    main()
