"""The `spiral serve` app without a browser: parameters checked, files kept inside the root, uploads
checked, and the event stream of a finished run folder told as the loop ran it."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from serve_helpers import GOAL, SCENE
from starlette.testclient import TestClient

from spiral.app.config import UPLOAD_BYTES, ServeConfig
from spiral.app.params import ParamError, RunParams, parse_run_params, run_command
from spiral.app.runs import RunManager
from spiral.app.server import create_app, inside
from spiral.cli import build_parser
from spiral.data.video import read_video

GOOD = {"goal": GOAL, "scene_seed": SCENE, "method": "closed-loop", "planner": "symbolic", "critic": "oracle",
        "max_tries": 1, "max_replans": 1, "max_generations": 3}  # fmt: skip
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(root):
    with TestClient(create_app(ServeConfig(root=root)), base_url="http://127.0.0.1") as client:
        yield client


def events(client, run_id: str, **headers) -> list[tuple[str | None, dict]]:
    """The (id, event) pairs of a run's stream; it ends by itself once the run is over."""
    response = client.get(f"/api/runs/{run_id}/events", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    pairs = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        pairs.append((fields.get("id"), json.loads(fields["data"])))
    return pairs


def png(size=(8, 8), kind="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=kind)
    return buf.getvalue()


BAD = [
    ({**GOOD, "shell": "rm -rf /"}, "unknown parameter 'shell'"),
    ({**GOOD, "world_model_path": "/etc/passwd"}, "unknown parameter 'world_model_path'"),
    ({**GOOD, "method": "evil"}, "method must be one of closed-loop, stepwise, oneshot"),
    ({**GOOD, "planner": "openai"}, "planner must be one of lm, symbolic"),
    ({**GOOD, "critic": "hf"}, "critic must be one of learned, oracle"),
    ({**GOOD, "max_tries": 0}, "max_tries must be a whole number from 1 to 10, got 0"),
    ({**GOOD, "max_replans": 11}, "max_replans must be a whole number from 0 to 10"),
    ({**GOOD, "max_generations": "3"}, 'max_generations must be a whole number from 1 to 100, got "3"'),
    ({**GOOD, "max_generations": True}, "max_generations must be a whole number"),
    ({**GOOD, "max_tries": 2.5}, "max_tries must be a whole number"),
    ({**GOOD, "scene_seed": -1}, "scene_seed must be a whole number from 0"),
    ({**GOOD, "goal": "   "}, "write a goal"),
    ({**GOOD, "goal": 7}, "write a goal"),
    ({**GOOD, "goal": "x" * 501}, "keep it under 500"),
    ({**GOOD, "goal": "clear the left side\n--planner openai"}, "control characters"),
    ({**GOOD, "upload": "0" * 32}, "not both"),
    ({k: v for k, v in GOOD.items() if k != "scene_seed"}, "pick a start"),
    ({**{k: v for k, v in GOOD.items() if k != "scene_seed"}, "upload": "../../etc/passwd"}, "upload id is malformed"),
    ([GOOD], "as a JSON object"),
]


@pytest.mark.parametrize("body, message", BAD, ids=[m for _, m in BAD])
def test_a_bad_parameter_gets_a_400_with_a_one_line_message(client, body, message):
    response = client.post("/api/runs", json=body)
    assert response.status_code == 400, response.text
    text = response.json()["error"]
    assert message in text and "\n" not in text
    assert len(list((client.app.state.manager.root).iterdir())) == 1  # no run folder was made


def test_only_the_page_can_start_runs(client):
    assert client.post("/api/runs", content=b"not json", headers=JSON).json()["error"] == "send the run's parameters as JSON"
    as_form = client.post("/api/runs", content=json.dumps(GOOD), headers={"Content-Type": "text/plain"})
    assert as_form.status_code == 415  # a plain cross-site form cannot send application/json
    other_site = client.post("/api/runs", json=GOOD, headers={"Origin": "http://evil.example"})
    assert other_site.status_code == 403 and "other sites" in other_site.json()["error"]
    assert client.get("/api/options", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding


def test_the_run_command_is_an_argument_list_spiral_run_reads_back(tmp_path):
    goal = "--help; rm -rf ~ && echo $(whoami) `id` 'quoted'"
    params = parse_run_params({**GOOD, "goal": goal})
    command = run_command(params, tmp_path / "r", None, "w.safetensors")
    assert command[1:4] == ["-m", "spiral.cli", "run"] and f"--goal={goal}" in command
    ns = build_parser().parse_args(command[3:])
    assert (ns.goal, ns.scene_seed, ns.image, ns.planner, ns.critic) == (goal, SCENE, None, "symbolic", "oracle")
    assert (ns.max_tries, ns.max_replans, ns.max_generations, ns.world_model_path) == (1, 1, 3, "w.safetensors")


def test_files_outside_the_root_are_never_served(client, root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    (root / "cli-run" / "out-link.txt").symlink_to(secret)
    (root / "dir-link").symlink_to(tmp_path)
    (root / ".uploads").mkdir()
    (root / ".uploads" / "a.png").write_bytes(png())
    assert client.get("/runs/cli-run/summary.json").json()["goal"] == GOAL  # inside: served
    for path in ["/runs/../secret.txt", "/runs/%2e%2e/secret.txt", "/runs/..%2fsecret.txt", "/runs/%2e%2e%2fsecret.txt",
                 "/runs/cli-run/%2e%2e/%2e%2e/secret.txt", "/runs/..%5csecret.txt", "/runs/%2fetc%2fpasswd", "/runs//etc/passwd",
                 "/runs/cli-run/out-link.txt", "/runs/dir-link/secret.txt", "/runs/.uploads/a.png", "/runs/cli-run/journal",
                 "/runs/../../../../etc/passwd", "/runs/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"]:  # fmt: skip
        response = client.get(path)
        assert response.status_code in (403, 404), path
        assert "the secret" not in response.text and "root:" not in response.text, path
    for raw in ["../secret.txt", "/etc/passwd", "cli-run/../../secret.txt", "..\\secret.txt", "cli-run/out-link.txt",
                "dir-link/secret.txt", ".uploads/a.png", "cli-run/\0", ""]:  # fmt: skip
        assert inside(root.resolve(), raw) is None, raw
    assert inside(root.resolve(), "cli-run/video.mp4") == (root / "cli-run" / "video.mp4").resolve()
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/..%2fserver.py").status_code == 404
    assert client.get("/api/runs/..%2f..%2fetc/events").status_code == 404
    viewer = client.get("/runs/cli-run/viewer.html")  # a run folder's page: shown without scripts
    assert viewer.status_code == 200 and viewer.headers["content-security-policy"].startswith("sandbox")


def test_uploads_are_checked_before_they_are_accepted(client):
    def upload(data: bytes):
        return client.post("/api/uploads", content=data, headers={"Content-Type": "application/octet-stream"})

    not_image = upload(b"#!/bin/sh\necho hi\n")
    assert not_image.status_code == 400 and "not a PNG or JPEG image" in not_image.json()["error"]
    gif = upload(png(kind="GIF"))
    assert gif.status_code == 400 and gif.json()["error"] == "the file is a GIF image: upload a PNG or JPEG"
    wide = upload(png((4097, 2)))
    assert wide.status_code == 400 and "4097x2 pixels, over the 4096x4096 limit" in wide.json()["error"]
    truncated = upload(png((64, 64))[:-40])
    assert truncated.status_code == 400 and "not a PNG or JPEG image" in truncated.json()["error"]
    heavy = upload(b"\x89PNG" + bytes(UPLOAD_BYTES))
    assert heavy.status_code == 413 and "over the 10 MB limit" in heavy.json()["error"]
    as_form = client.post("/api/uploads", content=png(), headers={"Content-Type": "multipart/form-data"})
    assert as_form.status_code == 415
    for kind in ("PNG", "JPEG"):
        ok = upload(png((40, 30), kind))
        assert ok.status_code == 200, ok.text
        assert (ok.json()["width"], ok.json()["height"]) == (40, 30)
        stored = Image.open(io.BytesIO(client.get(ok.json()["url"]).content))
        assert stored.format == "PNG" and stored.size == (40, 30)
    assert client.get("/api/uploads/../../etc/passwd.png").status_code == 404


def test_an_uploaded_start_is_copied_into_its_run_folder_and_a_queued_run_cancels(tmp_path):
    manager = RunManager(tmp_path / "root", parallel=1)
    manager.shutdown()  # no worker left: what is submitted stays queued
    upload = manager.save_upload(png((48, 48)))
    params = RunParams(**{**GOOD, "scene_seed": None, "upload": upload["upload"]})
    run = manager.submit(params)
    start = run.folder / "start.png"
    assert np.array_equal(np.asarray(Image.open(start)), np.full((48, 48, 3), (200, 30, 30), np.uint8))
    ns = build_parser().parse_args(run.command[3:])
    assert ns.image == start and ns.scene_seed is None and ns.goal == GOAL
    assert json.loads((run.folder / "serve.json").read_text())["state"] == "queued"
    assert [(r["id"], r["state"], r["goal"]) for r in manager.listing()] == [(run.id, "queued", GOAL)]
    assert manager.cancel(run.id) == "cancelled" and run.proc is None  # never started
    assert json.loads((run.folder / "serve.json").read_text())["state"] == "cancelled"
    with pytest.raises(ParamError, match="upload it again"):
        manager.submit(RunParams(**{**GOOD, "scene_seed": None, "upload": "f" * 32}))


def test_a_finished_run_streams_as_the_loop_ran_it(client, root):
    stream = events(client, "cli-run")
    kinds = [e["type"] for _, e in stream]
    assert kinds[0] == "run" and stream[0][1]["goal"] == GOAL and stream[0][0] is None
    assert kinds[-1] == "end" and kinds.index("plan") < kinds.index("clip")
    assert [n for n, _ in stream[1:]] == [str(i) for i in range(1, len(stream))]  # numbered in journal order
    episode = json.loads((root / "cli-run" / "episode" / "episode.json").read_text())
    plans = [e for _, e in stream if e["type"] == "plan"]
    assert [(p["why"], p["plan"]["steps"]) for p in plans] == [(p["why"], p["steps"]) for p in episode["extra"]["plans"]]
    assert plans[1]["why"] == "step 1 failed 1 times: move the yellow circle to the centre"
    clips = [e for _, e in stream if e["type"] == "clip"]
    recorded = [a for s in episode["steps"] for a in s["attempts"]]
    assert [c["instruction"] for c in clips] == [a["instruction"] for a in recorded] and len(clips) == 3
    assert [(c["plan"], c["step"], c["try"]) for c in clips] == [(0, 0, 0), (1, 0, 0), (1, 1, 0)]
    critiques = [e for _, e in stream if e["type"] == "critique"]
    assert [(c["n"], c["score"], c["feedback"]) for c in critiques] == [
        (i, a["critique"]["score"], a["critique"]["feedback"]) for i, a in enumerate(recorded)
    ]
    npz = np.load(root / "cli-run" / "journal" / "call-00001.npz")["clip0"]
    video = client.get(clips[0]["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    frames = read_video(root / "cli-run" / clips[0]["video"].split("/cli-run/")[1])
    assert frames.shape == (len(npz), 256, 256, 3)
    assert np.abs(frames[:, ::4, ::4].astype(int) - npz).mean() < 8  # the clip, enlarged x4
    end = stream[-1][1]
    summary = json.loads((root / "cli-run" / "summary.json").read_text())
    assert (end["state"], end["status"], end["goal_success"]) == (
        "finished",
        summary["status"],
        summary["judged"]["goal_success"],
    )
    assert client.get(end["video"]).status_code == 200
    again = events(client, "cli-run", **{"Last-Event-ID": "4"})  # a page that reconnects gets only what it lacks
    assert [n for n, _ in again] == [None] + [str(i) for i in range(5, len(stream))]


def test_past_runs_are_listed_and_a_cut_short_run_reads_as_interrupted(client, root):
    journal = root / "cli-run" / "journal"
    cut = root / "cut-short" / "journal"
    cut.mkdir(parents=True)
    lines = (journal / "calls.jsonl").read_text().splitlines(keepends=True)
    (cut / "calls.jsonl").write_text("".join(lines[:2]) + lines[2][:30])  # a plan, a clip, and a torn line
    (cut / "call-00001.npz").write_bytes((journal / "call-00001.npz").read_bytes())
    (cut / "config.json").write_text(json.dumps({"goal": "the cut goal"}))
    bench = root / "bench-1"
    bench.mkdir()
    (bench / "results.jsonl").write_text("{}\n")
    (bench / "report.html").write_text("<h1>ActWM-Bench report</h1>")
    (root / "not-a-run").mkdir()
    listed = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    assert set(listed) == {"cli-run", "cut-short", "bench-1"}
    assert (listed["cli-run"]["state"], listed["cli-run"]["goal"]) == ("finished", GOAL)
    assert (listed["cut-short"]["state"], listed["cut-short"]["goal"]) == ("interrupted", "the cut goal")
    assert listed["bench-1"]["kind"] == "bench" and client.get(listed["bench-1"]["report"]).text.startswith("<h1>ActWM")
    stream = [e for _, e in events(client, "cut-short")]
    assert [e["type"] for e in stream] == ["run", "plan", "clip", "end"]
    assert stream[-1]["state"] == "interrupted" and "rerun its command" in stream[-1]["error"]
    assert client.get("/api/runs/no-such-run/events").status_code == 404


def test_the_page_takes_its_choices_from_the_server(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert 'id="run-form"' in page.text and "http" not in page.text.replace('"http-equiv"', "")  # nothing from the internet
    script = client.get("/static/app.js").text
    assert not any(sink in script for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("))
    options = client.get("/api/options").json()
    assert options["choices"] == {"method": ["closed-loop", "stepwise", "oneshot"], "planner": ["lm", "symbolic"],
                                  "critic": ["learned", "oracle"]}  # fmt: skip
    thumb = client.get("/api/scene/4.png")
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 256)
    assert client.get(f"/api/scene/{2**31}.png").status_code == 400


def test_the_reader_places_retries_candidates_and_replans_as_the_loop_made_them(tmp_path):
    """A journal written by hand: a retry in the critic's wording, a passed step, a try of two
    candidates, a drift that triggers a replan, a goal check, and a clip file that is gone."""
    from spiral.app.events import EpisodeReader
    from spiral.loop import GOAL_CHECK

    journal = tmp_path / "journal"
    journal.mkdir()
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    step = lambda text: {"instruction": text, "subject": "s", "targets": [], "precondition": "", "postcondition": ""}
    plan = lambda *texts: {"kind": "plan", "result": {"goal": "g", "steps": [step(t) for t in texts], "reasoning": "r",
                                                      "planner": "p", "feasible": True, "reason": "", "tokens": 0}}  # fmt: skip
    critique = lambda verdict, score, refined=None, kind="incomplete": {"kind": "critique", "result": {
        "score": score, "verdict": verdict, "failure_kind": kind, "feedback": f"{verdict} {score}", "refined_instruction": refined}}  # fmt: skip
    lines = []

    def clips(*texts, keep=True):
        name = f"call-{len(lines):05d}.npz"
        if keep:
            np.savez(journal / name, **{f"clip{i}": frames for i in range(len(texts))})
        metas = [{"instruction": t, "seed": i, "source": "x", "seconds": 0.1} for i, t in enumerate(texts)]
        return {"kind": "clips", "result": {"clips": metas}, "files": {name: 1}}

    script = [lambda: plan("a", "b"), lambda: clips("a"), lambda: critique("local_failure", 0.2, "a, slowly"),
              lambda: clips("a, slowly"), lambda: critique("success", 0.9), lambda: clips("b", "b"),
              lambda: critique("local_failure", 0.1), lambda: critique("global_drift", 0.3, kind="wrong_object"),
              lambda: plan("c"), lambda: clips("c", keep=False), lambda: critique("success", 0.8), lambda: plan()]  # fmt: skip
    for make in script:  # in order: a clip file is named by its line's position
        lines.append(make())
    (journal / "calls.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    events = EpisodeReader(tmp_path, "/runs/x").read()
    placed = [(e["n"], e["plan"], e["step"], e["try"], e["candidate"]) for e in events if e["type"] == "clip"]
    assert placed == [(0, 0, 0, 0, 0), (1, 0, 0, 1, 0), (2, 0, 1, 0, 0), (3, 0, 1, 0, 1), (4, 1, 0, 0, 0)]
    whys = [(e["why"], e["goal_holds"]) for e in events if e["type"] == "plan"]
    assert whys == [("initial", False), ("global_drift: global_drift 0.3", False), (GOAL_CHECK, True)]
    critiques = [(e["n"], e["passed"]) for e in events if e["type"] == "critique"]
    assert critiques == [(0, False), (1, True), (2, False), (3, False), (4, True)]
    videos = [e["video"] for e in events if e["type"] == "clip"]
    assert videos[0] == "/runs/x/serve-clips/call-00001-0.mp4" and videos[4] is None  # its npz is gone
    assert read_video(tmp_path / "serve-clips" / "call-00005-1.mp4").shape == (3, 256, 256, 3)
