"""Records shared by every part of SPIRAL (world, agents, loop, data, bench)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

DEFAULT_FPS = 8  # the tabletop world's clips; other world models say their own rate on each clip


class Verdict(StrEnum):
    """What the critic concludes about one generated step."""

    SUCCESS = "success"
    LOCAL_FAILURE = "local_failure"  # this step went wrong; retrying the step may fix it
    GLOBAL_DRIFT = "global_drift"  # the world drifted away from the plan; replanning is needed


class Status(StrEnum):
    """How an episode ended (RUNNING while it runs). The bench adds two of its own: ERROR, an
    episode that raised, and ERRORED, one the infrastructure failed (left out of every rate, redone)."""

    RUNNING = "running"
    COMPLETED = "completed"
    INFEASIBLE = "infeasible"  # the first plan found the goal impossible
    BUDGET_EXHAUSTED = "budget_exhausted"
    PLAN_ERROR = "plan_error"  # no usable plan; Episode.error says why
    ERROR = "error"
    ERRORED = "errored"


class Outcome(StrEnum):
    """What became of a step's try, as the memory records it."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    REPLANNED = "replanned"
    ERROR = "error"


class FailureKind(StrEnum):
    NONE = "none"
    INCOMPLETE = "incomplete"  # the named object did not get where it should
    WRONG_OBJECT = "wrong_object"  # another object moved instead of (or with) the named one
    HALLUCINATED_OBJECT = "hallucinated_object"  # an object appeared or was duplicated
    PHYSICAL_VIOLATION = "physical_violation"  # vanished, changed colour/shape, teleported
    LOW_QUALITY = "low_quality"  # flicker, blur or noise that hides what happened
    PRECONDITION_UNMET = "precondition_unmet"  # the step could not start from this state
    AGENT_ERROR = "agent_error"  # the critic gave no valid answer (recorded, counts as a failed try)


@dataclass(frozen=True)
class Critique:
    """A critic's judgement of one clip. `score` is in [0, 1]; 1 means the step surely succeeded."""

    score: float
    verdict: Verdict
    failure_kind: FailureKind
    feedback: str
    refined_instruction: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"critique score must be in [0, 1], got {self.score}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["verdict"], d["failure_kind"] = self.verdict.value, self.failure_kind.value
        return d

    @staticmethod
    def from_dict(d: dict) -> Critique:
        return Critique(
            score=float(d["score"]),
            verdict=Verdict(d["verdict"]),
            failure_kind=FailureKind(d["failure_kind"]),
            feedback=str(d["feedback"]),
            refined_instruction=d.get("refined_instruction"),
        )


@dataclass(frozen=True)
class Clip:
    """A generated (or simulated) clip. frames[0] is the start frame the clip was generated from."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    instruction: str
    seed: int
    source: str  # which world model made it
    seconds: float = 0.0  # wall time spent generating it
    fps: int = DEFAULT_FPS  # the rate the model generates at
    extra: dict = field(default_factory=dict)

    @property
    def last_frame(self) -> np.ndarray:
        return self.frames[-1]


@dataclass(frozen=True)
class StepAction:
    """A step in structured form: `subject` moves to `relation` of `anchor` (a region, or another
    object: "left side" / "left_of" "blue circle" / "on" "red square")."""

    subject: str
    relation: str
    anchor: str


@dataclass(frozen=True)
class Step:
    """One object-centric step of a plan.

    `subject` is the object that should move; `targets` the other objects the step names.
    `action` is the step's structured form where the planner knows it (the tabletop planners);
    API planners leave it None and the critics parse the text.
    """

    instruction: str
    subject: str
    targets: tuple[str, ...] = ()
    precondition: str = ""
    postcondition: str = ""
    action: StepAction | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "targets": list(self.targets)}

    @staticmethod
    def from_dict(d: dict) -> Step:
        action = d.get("action")
        return Step(**{**d, "targets": tuple(d.get("targets", ())), "action": StepAction(**action) if action else None})


@dataclass(frozen=True)
class Plan:
    """A planner's answer: ordered steps and the reasoning (chain of thought) behind them.
    An infeasible goal is a Plan with no steps, feasible=False and the reason; a goal that already
    holds is a feasible Plan with no steps."""

    goal: str
    steps: tuple[Step, ...]
    reasoning: str
    planner: str
    feasible: bool = True
    reason: str = ""
    tokens: int = 0  # agent tokens spent (API backends); 0 where not counted

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": [s.to_dict() for s in self.steps]}

    @staticmethod
    def from_dict(d: dict) -> Plan:
        return Plan(**{**d, "steps": tuple(Step.from_dict(s) for s in d["steps"])})
