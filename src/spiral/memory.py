"""WorldMemory: what an episode knows so far, carried across the horizon.

It holds the current object states (as last read from the frames), the steps accepted, every
failed attempt with the critic's feedback, and the replans. Agents read it through `summary()`;
the loop and the viewer read the typed fields; it round-trips through JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from spiral.types import Outcome


@dataclass(frozen=True)
class ObjectState:
    """One object as last seen. Positions are in [0, 1] table/image units (x right, y down)."""

    name: str
    x: float
    y: float
    region: str = ""  # e.g. "top left corner"
    on: str | None = None  # what it rests on, if anything

    def describe(self) -> str:
        where = f"in the {self.region}" if self.region else f"at ({self.x:.2f}, {self.y:.2f})"
        return f"the {self.name} {where}" + (f", on the {self.on}" if self.on else "")


@dataclass(frozen=True)
class MemoryEvent:
    step: int  # index of the step in the plan it belonged to
    plan: int  # which plan (0 = first, 1 = after the first replan, ...)
    instruction: str
    outcome: Outcome
    score: float | None = None
    feedback: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))  # also read back from JSON as text


@dataclass
class WorldMemory:
    goal: str
    events: list[MemoryEvent] = field(default_factory=list)
    use_history: bool = True  # the "no memory" ablation sees only the current objects
    _objects: list[ObjectState] = field(default_factory=list, repr=False)
    _pending: Callable[[], list[ObjectState]] | None = field(default=None, repr=False, compare=False)

    @property
    def objects(self) -> list[ObjectState]:
        """The object states, read from the latest frame the first time someone asks."""
        if self._pending is not None:
            self._objects, self._pending = list(self._pending()), None
        return self._objects

    def set_objects(self, objects: list[ObjectState]) -> None:
        self._objects, self._pending = list(objects), None

    def observe_later(self, read: Callable[[], list[ObjectState]]) -> None:
        """Reading objects off a frame costs a perception pass; defer it until an agent (or the
        episode record) needs the states, so steps whose agents never look cost nothing."""
        self._pending = read

    def record(self, event: MemoryEvent) -> None:
        self.events.append(event)

    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    @property
    def accepted(self) -> list[MemoryEvent]:
        return [e for e in self.events if e.outcome == Outcome.ACCEPTED]

    @property
    def failures(self) -> list[MemoryEvent]:
        return [e for e in self.events if e.outcome in (Outcome.FAILED, Outcome.ERROR)]

    def summary(self, max_failures: int = 5) -> str:
        """A short text for agents: the goal, what is where now, what was done, what went wrong."""
        lines = [f"Goal: {self.goal}"]
        if self.objects:
            lines.append("Objects now: " + "; ".join(o.describe() for o in self.objects) + ".")
        if self.use_history:
            if self.accepted:
                lines.append("Done so far: " + "; ".join(e.instruction for e in self.accepted) + ".")
            for e in self.failures[-max_failures:]:
                lines.append(f"Failed attempt: '{e.instruction}'" + (f" ({e.feedback})" if e.feedback else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "goal": self.goal,
            "objects": [asdict(o) for o in self.objects],
            "events": [asdict(e) for e in self.events],
            "use_history": self.use_history,
        }

    @staticmethod
    def from_dict(d: dict) -> WorldMemory:
        memory = WorldMemory(
            goal=d["goal"], events=[MemoryEvent(**e) for e in d.get("events", [])], use_history=d.get("use_history", True)
        )
        memory.set_objects([ObjectState(**o) for o in d.get("objects", [])])
        return memory
