"""What users set on a diffusers backbone, on tiny random models saved to folders and loaded back:
every backbone at every documented dtype combination, options typed and checked before any work,
the start image fitted once (crop / pad) at the model's aspect, the clip's frame rate, and a LoRA
exported in diffusers' format loaded onto a fresh pipeline."""

import json

import numpy as np
import pytest
import torch
from diffusers_tiny import (
    HUNYUAN_TEMPLATE,
    INSTRUCTION,
    start_frame,
    tiny_cogvideox,
    tiny_hunyuan,
    tiny_ltx,
    tiny_wan,
    tiny_wan22,
)
from PIL import Image

from spiral.config import parse_key_values
from spiral.errors import SpiralError
from spiral.loop import LoopConfig, run
from spiral.worldmodels.base import prepare_frame
from spiral.worldmodels.diffusers import DiffusersConfig, DiffusersWorldModel, make_diffusers_world_model
from spiral.worldmodels.diffusers.model import check_diffusers_options

BUILDERS = {
    "wan-i2v": (tiny_wan, 5),
    "cogvideox-i2v": (tiny_cogvideox, 9),
    "ltx-i2v": (tiny_ltx, 5),
    "ltx-condition": (lambda: tiny_ltx(condition=True), 5),
    "hunyuan-i2v": (tiny_hunyuan, 5),
}
SMALL = "height=32,width=32,num_inference_steps=2,device=cpu"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name, (build, _) in BUILDERS.items():
        build().save_pretrained(root / name)
    return root


def load(folders, name: str, options: str = ""):
    text = f"{SMALL},num_frames={BUILDERS[name][1]}" + (f",{options}" if options else "")
    if name == "hunyuan-i2v":
        text += ",pipeline.max_sequence_length=16"
    kwargs = parse_key_values(text, "--world-model-options")
    wm = make_diffusers_world_model(name, str(folders / name), **kwargs)
    if name == "hunyuan-i2v":  # a dict: not something a flag carries
        wm.cfg.pipeline_kwargs["prompt_template"] = HUNYUAN_TEMPLATE
    return wm


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("dtypes", ["float32/float32", "bf16/float32", "float32/bfloat16", "bfloat16/bf16"])
def test_every_backbone_runs_at_every_dtype_combination(folders, name, dtypes):
    """bfloat16 with the VAE kept in float32 is what a GPU gets by default (dtype auto)."""
    dtype, vae_dtype = dtypes.split("/")
    wm = load(folders, name, f"dtype={dtype},vae_dtype={vae_dtype}")
    assert wm.pipe.transformer.dtype == (torch.float32 if dtype == "float32" else torch.bfloat16)
    assert wm.pipe.vae.dtype == (torch.float32 if vae_dtype == "float32" else torch.bfloat16)
    clip = wm.generate(start_frame(32), INSTRUCTION, seed=0)
    assert clip.frames.shape == (BUILDERS[name][1], 32, 32, 3) and clip.frames.dtype == np.uint8
    assert len({f.tobytes() for f in clip.frames[1:]}) > 1, "a clip that moves, not a constant frame"


def test_option_values_are_typed_and_checked_before_any_work():
    typed = check_diffusers_options(
        parse_key_values(
            "vae_tiling=False,vae_slicing=yes,dtype=bf16,vae_dtype=fp32,num_frames=17,guidance_scale=3,"
            "offload=group,pipeline.max_sequence_length=226,pipeline.negative_prompt=blurry",
            "--world-model-options",
        )
    )
    assert typed["vae_tiling"] is False and typed["vae_slicing"] is True
    assert (typed["dtype"], typed["vae_dtype"], typed["num_frames"]) == ("bfloat16", "float32", 17)
    assert typed["guidance_scale"] == 3.0 and typed["offload"] == "group"
    assert typed["pipeline_kwargs"] == {"max_sequence_length": 226, "negative_prompt": "blurry"}
    for text, message in (
        ("vae_tiling=maybe", "vae_tiling='maybe' takes true or false"),
        ("dtype=bf17", "dtype='bf17' is not a dtype this takes; use one of auto, float32, bfloat16, float16"),
        ("num_frames=12.5", "num_frames=12.5 takes an integer"),
        ("offload=disk", "offload='disk' is not one of none, model, sequential, group"),
        ("device=gpu0", "device='gpu0' is not a device"),
        ("height=0", "height must be >= 1"),
        ("layerwise_casting=int4", "layerwise_casting='int4' is not a dtype"),
        ("nframes=5", "unknown diffusers option 'nframes'"),
    ):
        with pytest.raises(SpiralError, match=message):
            check_diffusers_options(parse_key_values(text, "--world-model-options"))


def test_a_pipeline_image_option_is_read_from_a_file(tmp_path):
    Image.fromarray(start_frame(24)).save(tmp_path / "end.png")
    typed = check_diffusers_options({"pipeline.last_image": str(tmp_path / "end.png")})
    assert isinstance(typed["pipeline_kwargs"]["last_image"], Image.Image)
    with pytest.raises(SpiralError, match="cannot read the image"):
        check_diffusers_options({"pipeline.last_image": str(tmp_path / "missing.png")})


def test_start_images_keep_their_aspect_ratio():
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # a white centre half, black left and right quarters
    cropped = prepare_frame(wide, (32, 32), "crop")
    assert cropped.shape == (32, 32, 3) and cropped.min() == 255, "crop keeps the centre, scaled, not squashed"
    padded = prepare_frame(wide, (32, 32), "pad")
    assert padded[:8].max() == 0 and padded[-8:].max() == 0, "pad letterboxes above and below"
    assert padded[8:24, 8:24].min() == 255
    squashed = prepare_frame(wide, (32, 32), "stretch")
    assert squashed[:, :6].max() == 0 and squashed[:, 26:].max() == 0
    same = start_frame(32)
    assert prepare_frame(same, (32, 32)) is not same and np.array_equal(prepare_frame(same, (32, 32)), same)


def test_the_loop_fits_the_start_once_and_the_run_keeps_the_model_frame_rate(folders, tmp_path):
    """A 16:9 image on a 32x48 model: the planner sees the cropped frame the model conditions on,
    and the long video plays at the model's fps."""
    from spiral.data.video import read_video
    from spiral.outputs import write_run
    from spiral.types import Plan, Step

    wm = make_diffusers_world_model(
        "wan-i2v", str(folders / "wan-i2v"), height=32, width=48, num_frames=5, num_inference_steps=2, fps=12
    )
    image = np.asarray(Image.fromarray(start_frame(64)).resize((112, 63)))
    seen = []

    class OneStep:
        name = "one-step"

        def reset(self, goal, frame):
            pass

        def plan(self, goal, frame, memory):
            seen.append(frame)
            return Plan(goal, (Step(INSTRUCTION, "red square"),), "one step", self.name)

    episode = run("move the red square", image, wm, OneStep(), None, LoopConfig(method="stepwise", goal_check=False))
    assert seen and seen[0].shape == (32, 48, 3) and np.array_equal(seen[0], prepare_frame(image, (32, 48)))
    assert np.array_equal(episode.start_frame, seen[0]) and episode.attempts[0].clip.fps == 12
    outputs = write_run(episode, tmp_path / "out", world="real")
    record = json.loads((outputs.episode_dir / "episode.json").read_text())
    assert record["fps"] == 12
    assert read_video(outputs.video).shape[0] == episode.video().shape[0]


def test_an_exported_lora_loads_onto_a_fresh_pipeline_and_gives_the_same_frames(folders, tmp_path):
    from spiral.rl.diffusers_policy import ADAPTER, DiffusersLoRAPolicy
    from spiral.worldmodels.diffusers.lora import export_lora

    trained = load(folders, "wan-i2v")
    policy = DiffusersLoRAPolicy(trained, rank=2, alpha=2)
    with torch.no_grad():  # stand-in for training: a non-zero adapter
        for p in policy.trainable():
            p.add_(torch.randn_like(p) * 0.3)
    expected = trained.generate(start_frame(32), INSTRUCTION, seed=4).frames
    folder = export_lora(trained.pipe, ADAPTER, tmp_path / "lora", {"grpo_iterations": 3})
    assert json.loads((folder / "card.json").read_text()) == {"grpo_iterations": 3}

    fresh = load(folders, "wan-i2v", f"lora={folder}")
    assert np.array_equal(fresh.generate(start_frame(32), INSTRUCTION, seed=4).frames, expected)
    off = load(folders, "wan-i2v", f"lora={folder},lora_scale=0")
    base = load(folders, "wan-i2v")
    assert np.array_equal(off.generate(start_frame(32), INSTRUCTION, seed=4).frames,
                          base.generate(start_frame(32), INSTRUCTION, seed=4).frames)  # fmt: skip
    assert not np.array_equal(base.generate(start_frame(32), INSTRUCTION, seed=4).frames, expected)
    with pytest.raises(SpiralError, match="no LoRA weights at"):
        load(folders, "wan-i2v", f"lora={tmp_path / 'nothing'}")


def test_the_released_model_defaults_are_read_off_the_loaded_folder():
    """One backbone name, several released models: Wan2.2 TI2V-5B makes 121 frames at 24 fps,
    Wan2.2 A14B 81 at 16 with guidance 3.5, CogVideoX 1.5 81 at 16; Wan2.1 keeps the backbone's."""
    cases = {
        "Wan2.2-TI2V-5B": tiny_wan22("ti2v"),
        "Wan2.2-I2V-A14B": tiny_wan22("a14b"),
        "Wan2.1-I2V-14B-480P": tiny_wan(),
    }
    for name, pipe in cases.items():
        wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(num_inference_steps=2, height=32, width=32, num_frames=5))
        assert wm.defaults.name == name
        clip = wm.generate(start_frame(32), INSTRUCTION, seed=0)
        assert clip.frames.shape == (5, 32, 32, 3) and clip.fps == wm.defaults.fps
    five_b = DiffusersWorldModel("wan-i2v", tiny_wan22("ti2v"))
    assert (five_b.height, five_b.width, five_b.num_frames, five_b.fps, five_b.guidance_scale) == (704, 1280, 121, 24, 5.0)
    a14b = DiffusersWorldModel("wan-i2v", tiny_wan22("a14b"))
    assert (a14b.num_frames, a14b.fps, a14b.guidance_scale, a14b.num_inference_steps) == (81, 16, 3.5, 40)
    cog = tiny_cogvideox()
    cog.transformer.register_to_config(patch_size_t=2)
    assert DiffusersWorldModel("cogvideox-i2v", cog).defaults.name == "CogVideoX1.5-5B-I2V"
    assert DiffusersWorldModel("cogvideox-i2v", tiny_cogvideox()).fps == 8


def test_a_two_expert_wan_exports_and_loads_both_adapters(tmp_path):
    from spiral.rl.diffusers_policy import ADAPTER, DiffusersLoRAPolicy
    from spiral.worldmodels.diffusers.lora import export_lora

    tiny_wan22("a14b").save_pretrained(tmp_path / "a14b")
    options = dict(height=32, width=32, num_frames=5, num_inference_steps=4, device="cpu")
    trained = make_diffusers_world_model("wan-i2v", str(tmp_path / "a14b"), **options)
    policy = DiffusersLoRAPolicy(trained, rank=2, alpha=2)
    assert {k.split(".")[0] for k in policy.lora} == {"transformer", "transformer_2"}
    with torch.no_grad():
        for p in policy.trainable():
            p.add_(torch.randn_like(p) * 0.3)
    expected = trained.generate(start_frame(32), INSTRUCTION, seed=2).frames
    folder = export_lora(trained.pipe, ADAPTER, tmp_path / "lora", {})
    assert (folder / "transformer_2.safetensors").is_file()
    loaded = make_diffusers_world_model("wan-i2v", str(tmp_path / "a14b"), lora=str(folder), **options)
    assert np.array_equal(loaded.generate(start_frame(32), INSTRUCTION, seed=2).frames, expected)


class RecordingPipe:
    """Stands in for a pipeline on a GPU: records which memory calls the options make."""

    def __init__(self):
        self.calls, self.vae, self.transformer, self.transformer_2 = [], self, self, None

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, kwargs))


@pytest.mark.parametrize(
    "options, expected",
    [
        ("offload=model", ["enable_model_cpu_offload"]),
        ("offload=sequential", ["enable_sequential_cpu_offload"]),
        ("offload=group", ["enable_group_offload"]),
        ("layerwise_casting=float8_e4m3fn,vae_tiling=true,vae_slicing=1,compile=yes",
         ["enable_layerwise_casting", "to", "enable_tiling", "enable_slicing", "compile"]),
        ("vae_tiling=False", ["to"]),
    ],
)  # fmt: skip
def test_memory_options_reach_diffusers(options, expected):
    from spiral.worldmodels.diffusers.memory import apply_memory_options

    cfg = DiffusersConfig(**check_diffusers_options(parse_key_values(options, "--world-model-options")))
    pipe = RecordingPipe()
    apply_memory_options(pipe, cfg, "cuda", torch.bfloat16)
    assert [name for name, _ in pipe.calls] == expected
    if "group" in options:
        assert pipe.calls[0][1]["offload_type"] == "leaf_level" and pipe.calls[0][1]["use_stream"] is True
    if "layerwise" in options:
        assert pipe.calls[0][1] == {"storage_dtype": torch.float8_e4m3fn, "compute_dtype": torch.bfloat16}
