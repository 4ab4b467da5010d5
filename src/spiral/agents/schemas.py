"""JSON schemas of the agents' answers, for servers that constrain decoding to a schema (OpenAI's
structured outputs, vLLM's guided decoding, llama.cpp's grammars): the model can then only write an
answer of the right shape, and parsing.py's validators check what a schema cannot say (objects in
the scene, a verdict consistent with its failure kind, a score in [0, 1]).

Strict mode wants every property required and no others; optional values are nullable instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from spiral.types import FailureKind, Verdict


@dataclass(frozen=True)
class ResponseSchema:
    name: str
    schema: dict

    def response_format(self) -> dict:
        """The chat-completions `response_format` field asking for JSON that follows the schema."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}


def _object(**properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


_TEXT = {"type": "string"}

# "reasoning" comes first: a model writes the fields in order, so it thinks before it commits to steps.
PLAN = ResponseSchema(
    "plan",
    _object(
        reasoning=_TEXT,
        feasible={"type": "boolean"},
        reason=_TEXT,
        steps={
            "type": "array",
            "items": _object(
                instruction=_TEXT,
                subject=_TEXT,
                targets={"type": "array", "items": _TEXT},
                precondition=_TEXT,
                postcondition=_TEXT,
            ),
        },
    ),
)

CRITIQUE = ResponseSchema(
    "critique",
    _object(
        score={"type": "number"},
        verdict={"type": "string", "enum": [v.value for v in Verdict]},
        failure_kind={"type": "string", "enum": [k.value for k in FailureKind]},
        feedback=_TEXT,
        refined_instruction={"type": ["string", "null"]},
    ),
)
