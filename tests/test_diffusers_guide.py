"""docs/guides/diffusers.md's commands, run as written on the CPU: each hub id becomes a tiny random
model of the same layout saved to a folder, vLLM a scripted OpenAI-compatible server, GPU options
(device, offload, 8-bit weights) their CPU equivalents and sizes tiny. A flag or an option the guide
uses that stops existing fails here."""

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "worldmodels"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "agents"))

from chat_server import ChatServer, ok  # noqa: E402
from diffusers_tiny import start_frame, tiny_cogvideox, tiny_wan, tiny_wan22  # noqa: E402
from PIL import Image  # noqa: E402

from spiral.cli import main  # noqa: E402

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "diffusers.md"
MODELS = {
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers": (lambda: tiny_wan22("ti2v"), 5),
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": (tiny_wan, 5),
    "THUDM/CogVideoX-5b-I2V": (tiny_cogvideox, 9),
}
GPU_ONLY = ("offload", "layerwise_casting", "compile")  # need an accelerator, or take minutes on a CPU
SMALL_RUN = {"--iterations": "1", "--groups": "1", "--group-size": "2", "--eval-every": "1", "--probes": "1"}
PLAN = {"reasoning": "one move does it", "feasible": True, "reason": "", "steps": [
    {"instruction": "move the red square to the left side", "subject": "red square", "targets": [],
     "precondition": "the red square is on the table", "postcondition": "the red square is on the left side"}]}  # fmt: skip
CRITIQUE = {"score": 0.8, "verdict": "success", "failure_kind": "none", "feedback": "done", "refined_instruction": None}


def guide_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [" ".join(b.replace("\\\n", " ").split()) for b in blocks if b.startswith("spiral ")]


class ByRole:
    """The scripted server's replies: a critique to what asks for one, a plan to the rest."""

    def __init__(self, server: ChatServer):
        self.server = server

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, i: int):
        schema = self.server.seen[i].body.get("response_format", {}).get("json_schema", {}).get("name")
        return ok(json.dumps(CRITIQUE if schema == "critique" else PLAN))


def tiny_options(options: str, frames: int) -> str:
    kept = [o for o in options.split(",") if o.split("=")[0] not in (*GPU_ONLY, "num_frames", "num_inference_steps")]
    kept = [o.replace("device=cuda", "device=cpu").replace("dtype=bf16", "dtype=float32") for o in kept]
    return ",".join([*kept, "height=32", "width=32", f"num_frames={frames}", "num_inference_steps=2"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("guide")
    for hub_id, (build, _) in MODELS.items():
        build().save_pretrained(root / hub_id.replace("/", "--"))
    Image.fromarray(start_frame(48)).resize((64, 40)).save(root / "start.png")
    (root / "my_tasks.jsonl").write_text(
        json.dumps({"image": "start.png", "instruction": "move the red square to the left side"}) + "\n"
    )
    server = ChatServer()
    server.script = ByRole(server)
    yield root, server
    server.close()


def tinify(command: str, root: Path, server: ChatServer, out: Path) -> list[str]:
    """The guide's command with tiny models, the scripted server, a short run and `out` as its folder."""
    args = shlex.split(command)[1:]
    frames = next(f for hub, (_, f) in MODELS.items() if hub in args)
    for i, (arg, value) in enumerate(zip(args, [*args[1:], ""], strict=True)):
        if arg in ("--world-model-path", "--model-path"):
            args[i + 1] = str(root / value.replace("/", "--"))
        elif arg in ("--world-model-options", "--model-options"):
            args[i + 1] = tiny_options(value, frames)
        elif arg.endswith("base-url"):
            args[i + 1] = server.url
        elif arg == "--out":
            args[i + 1] = str(out)
        elif arg in SMALL_RUN:
            args[i + 1] = SMALL_RUN[arg]
    if "--base-url" not in args:  # the guide's agents talk to vLLM at its default address
        args += ["--base-url", server.url] if args[0] == "run" else ["--critic-base-url", server.url]
    return args


@pytest.mark.parametrize("command", guide_commands(), ids=lambda c: c.split(" --out ")[-1].split()[0])
def test_the_guide_command_runs(command, world, monkeypatch, tmp_path):
    root, server = world
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.chdir(root)
    args = tinify(command, root, server, tmp_path / "out")
    lora = re.search(r"lora=([^,\s]+)", " ".join(args))
    if lora:  # the adapter the guide's GRPO command exports: train a tiny one first
        train = next(c for c in guide_commands() if c.startswith("spiral train grpo"))
        assert main(tinify(train, root, server, tmp_path / "train")) == 0
        args = [a.replace(f"lora={lora.group(1)}", f"lora={tmp_path / 'train' / 'lora'}") for a in args]
    assert main(args) == 0
    made = tmp_path / "out" / ("lora/pytorch_lora_weights.safetensors" if args[0] == "train" else "video.mp4")
    assert made.is_file()
