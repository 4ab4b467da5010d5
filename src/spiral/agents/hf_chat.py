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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spiral.agents.parsing import Reply
from spiral.agents.prompts import Message, load_prompt
from spiral.config import option, required
from spiral.errors import SpiralError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class HFChatConfig:
    """A local model folder and how to run it; the HF agents take these fields as keyword options."""

    model_path: str = required("local folder of a transformers chat model (config.json, weights, tokenizer)")
    max_new_tokens: int = option(1024, "most tokens the model may write per answer")
    max_repairs: int = option(2, "times the model is asked to fix an unusable answer")
    device: str = option("cpu", "torch device: cpu, cuda, cuda:1, ... or auto (cuda when available)")
    dtype: str = option("auto", "weight dtype: auto (as saved), float32, bfloat16 or float16")


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


class HFChatModel:
    """A local chat model (text-only or vision-language), loaded once, answering one turn at a time."""

    def __init__(self, config: HFChatConfig):
        import torch

        self.config, self.max_repairs = config, config.max_repairs
        path = Path(config.model_path).expanduser()
        if not path.is_dir():
            raise SpiralError(f"model folder {path} does not exist; download a model there first")
        if not (path / "config.json").is_file():
            raise SpiralError(f"{path} has no config.json; expected a folder written by save_pretrained or a Hub snapshot")
        tf = _transformers()
        try:
            model_config = tf.AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise SpiralError(f"{path}/config.json is not a config transformers can read: {err}") from err
        self.vision = _is_vision(tf, model_config)
        if self.vision:
            self.processor = self._load(tf.AutoProcessor, path, "processor (preprocessor_config.json + tokenizer)")
            self.tokenizer = self.processor.tokenizer
            auto = getattr(tf, "AutoModelForImageTextToText", None) or tf.AutoModelForVision2Seq
        else:
            self.processor = None
            if not any((path / f).is_file() for f in _TOKENIZER_FILES):
                raise SpiralError(f"{path} has no tokenizer: none of {', '.join(_TOKENIZER_FILES)} is there")
            self.tokenizer = self._load(tf.AutoTokenizer, path, "tokenizer (tokenizer.json or tokenizer_config.json)")
            auto = tf.AutoModelForCausalLM
        template_owner = self.processor if self.vision else self.tokenizer
        if not getattr(template_owner, "chat_template", None):
            raise SpiralError(f"{path} has no chat template (chat_template.jinja); use an instruction-tuned chat model")
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype, None)
        if dtype is None:
            raise SpiralError(f"unknown dtype {config.dtype!r}; use auto, float32, bfloat16 or float16")
        self.model = self._load(auto, path, "model weights (model.safetensors)", dtype=dtype)
        self.model.to(device).eval()
        self.device = device
        self._no_image = load_prompt("chat").no_image

    def __repr__(self) -> str:
        kind = "vision" if self.vision else "text-only"
        return f"HFChatModel({self.config.model_path!r}, {kind}, device={self.device!r})"

    @staticmethod
    def _load(cls, path: Path, what: str, **kwargs):
        try:
            return cls.from_pretrained(path, local_files_only=True, **kwargs)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SpiralError(f"cannot load the {what} from {path}: {err}") from err

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

    def complete(self, messages: list[Message]) -> Reply:
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
