"""A local `transformers` chat model behind the same `complete(messages) -> Reply` turn as the API
client, so the HF planner and critic reuse the JSON extraction, validation and repair of parsing.py.

The folder decides the kind of model:
- a vision-language model (its config is one AutoModelForImageTextToText knows, e.g. Qwen2.5-VL,
  LLaVA, Idefics3, SmolVLM) is loaded with AutoProcessor and sees the frames as images;
- any other causal LM is loaded with AutoTokenizer + AutoModelForCausalLM and reads text only:
  each image is replaced by the `no_image` note of prompts/chat.yaml, so a text-only planner plans
  from memory.summary() (object positions) and a text-only critic judges from the step and memory
  alone, which makes it a weak critic; prefer a VLM for critique.

Decoding is greedy (do_sample=False), so the same prompt gives the same answer. Only local files
are read (local_files_only=True): download a model first, e.g. `hf download <repo> --local-dir DIR`.
Agents of the same folder, device and dtype (a planner and a critic of one VLM) share one loaded copy.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spiral.agents.parsing import Reply
from spiral.agents.prompts import Message, load_prompt
from spiral.agents.schemas import ResponseSchema
from spiral.config import option, required
from spiral.errors import SpiralError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class HFChatConfig:
    """A local model folder and how to run it; the HF agents take these fields as keyword options."""

    model_path: str = required("local folder of a transformers chat model (config.json, weights, tokenizer)")
    max_new_tokens: int = option(1024, "most tokens the model may write per answer")
    max_repairs: int = option(2, "times the model is asked to fix an unusable answer")
    device: str = option("auto", "hf agents: torch device, auto (cuda when available), cpu, cuda, cuda:1, mps")
    dtype: str = option("auto", "hf agents: weight dtype, auto (bfloat16 on cuda, float32 elsewhere), float32, bfloat16, float16")


def check_device_dtype(device: str, dtype: str) -> None:
    if not _DEVICE.fullmatch(device):
        raise SpiralError(f"--agent-device {device!r} is not a torch device: use auto, cpu, cuda, cuda:N or mps")
    if dtype not in DTYPES:
        raise SpiralError(f"--agent-dtype {dtype!r} is not one of {', '.join(DTYPES)}")


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """'auto' made concrete: cuda when there is one; bfloat16 on cuda (half the memory of float32,
    and the range fp16 lacks), float32 elsewhere (CPUs are slow or inexact in half precision)."""
    check_device_dtype(device, dtype)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise SpiralError("local model agents need transformers: pip install 'transformers>=4.50'") from err
    return transformers


def _is_vision(tf, config) -> bool:
    for auto in ("AutoModelForImageTextToText", "AutoModelForVision2Seq"):  # the second is 4.x's name
        cls = getattr(tf, auto, None)
        if cls is not None and type(config) in cls._model_mapping:
            return True
    return False


class LoadedChatModel:
    """A folder's weights with their tokenizer (and processor), on one device in one dtype: the part
    a planner and a critic of the same model can share."""

    def __init__(self, path: Path, device: str, dtype: str):
        import torch

        if not path.is_dir():
            raise SpiralError(f"model folder {path} does not exist; download a model there first")
        if not (path / "config.json").is_file():
            raise SpiralError(f"{path} has no config.json; expected a folder written by save_pretrained or a Hub snapshot")
        tf = _transformers()
        try:
            model_config = tf.AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise SpiralError(f"{path}/config.json is not a config transformers can read: {err}") from err
        self.path, self.device, self.dtype = path, device, dtype
        self.vision = _is_vision(tf, model_config)
        if self.vision:
            self.processor = _load(tf.AutoProcessor, path, "processor (preprocessor_config.json + tokenizer)")
            self.tokenizer = self.processor.tokenizer
            auto = getattr(tf, "AutoModelForImageTextToText", None) or tf.AutoModelForVision2Seq
        else:
            self.processor = None
            if not any((path / f).is_file() for f in _TOKENIZER_FILES):
                raise SpiralError(f"{path} has no tokenizer: none of {', '.join(_TOKENIZER_FILES)} is there")
            self.tokenizer = _load(tf.AutoTokenizer, path, "tokenizer (tokenizer.json or tokenizer_config.json)")
            auto = tf.AutoModelForCausalLM
        template_owner = self.processor if self.vision else self.tokenizer
        if not getattr(template_owner, "chat_template", None):
            raise SpiralError(f"{path} has no chat template (chat_template.jinja); use an instruction-tuned chat model")
        self.model = _load(auto, path, "model weights (model.safetensors)", dtype=getattr(torch, dtype))
        self.model.to(device).eval()


def _load(cls, path: Path, what: str, **kwargs):
    try:
        return cls.from_pretrained(path, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SpiralError(f"cannot load the {what} from {path}: {err}") from err


# Weak: a copy lives while an agent holds it, so a planner and a critic of one model share it, and
# it is freed with the last agent that used it.
_LOADED: weakref.WeakValueDictionary[tuple[str, str, str], LoadedChatModel] = weakref.WeakValueDictionary()


def load_chat_model(model_path: str | Path, device: str = "auto", dtype: str = "auto") -> LoadedChatModel:
    """The folder's model on `device` in `dtype`, loaded once for every agent in the process that asks for it."""
    device, dtype = resolve_device_dtype(device, dtype)
    path = Path(model_path).expanduser().resolve()
    key = (str(path), device, dtype)
    loaded = _LOADED.get(key)
    if loaded is None:
        loaded = _LOADED[key] = LoadedChatModel(path, device, dtype)
    return loaded


class HFChatModel:
    """A local chat model (text-only or vision-language) answering one turn at a time; its weights
    are shared with every other agent of the same folder, device and dtype."""

    def __init__(self, config: HFChatConfig):
        self.config, self.max_repairs = config, config.max_repairs
        self.loaded = load_chat_model(config.model_path, config.device, config.dtype)
        self.model, self.tokenizer, self.processor = self.loaded.model, self.loaded.tokenizer, self.loaded.processor
        self.vision, self.device = self.loaded.vision, self.loaded.device
        self._no_image = load_prompt("chat").no_image

    def __repr__(self) -> str:
        kind = "vision" if self.vision else "text-only"
        return f"HFChatModel({self.config.model_path!r}, {kind}, device={self.device!r}, dtype={self.loaded.dtype!r})"

    def _conversation(self, messages: list[Message]) -> list[dict]:
        chat, seen = [], 0
        for m in messages:
            if self.vision:
                from PIL import Image

                parts = [{"type": "text", "text": m.text}]
                parts += [{"type": "image", "image": Image.fromarray(np.asarray(f, dtype=np.uint8))} for f in m.images]
                chat.append({"role": m.role, "content": parts})
            else:
                notes = [self._no_image.replace("{index}", str(seen + i + 1)) for i in range(len(m.images))]
                chat.append({"role": m.role, "content": "\n".join([m.text, *notes]) if notes else m.text})
            seen += len(m.images)
        return chat

    def complete(self, messages: list[Message], schema: ResponseSchema | None = None) -> Reply:
        """`schema` is not enforced: plain generate() has no constrained decoding, so the answer is
        parsed and repaired like any other."""
        import torch

        owner = self.processor if self.vision else self.tokenizer
        inputs = owner.apply_chat_template(
            self._conversation(list(messages)),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False, pad_token_id=pad)
        new = out[0, prompt_len:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Reply(text, int(prompt_len + new.shape[0]))
