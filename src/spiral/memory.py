"""WorldMemory: what an episode knows so far, carried across the horizon.

It holds the current object states (as last read from the frames), the steps accepted, every
failed attempt with the critic's feedback, and the replans. Agents read it through `summary()`;
the loop and the viewer read the typed fields; it round-trips through JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    outcome: str  # "accepted" | "failed" | "replanned" | "error"
    score: float | None = None
    feedback: str = ""


@dataclass
class WorldMemory:
    goal: str
    objects: list[ObjectState] = field(default_factory=list)
    events: list[MemoryEvent] = field(default_factory=list)
    use_history: bool = True  # the "no memory" ablation sees only the current objects

    def set_objects(self, objects: list[ObjectState]) -> None:
        self.objects = list(objects)

    def record(self, event: MemoryEvent) -> None:
        self.events.append(event)

    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    @property
    def accepted(self) -> list[MemoryEvent]:
        return [e for e in self.events if e.outcome == "accepted"]

    @property
    def failures(self) -> list[MemoryEvent]:
        return [e for e in self.events if e.outcome in ("failed", "error")]

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
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> WorldMemory:
        return WorldMemory(
            goal=d["goal"],
            objects=[ObjectState(**o) for o in d.get("objects", [])],
            events=[MemoryEvent(**e) for e in d.get("events", [])],
            use_history=d.get("use_history", True),
        )
