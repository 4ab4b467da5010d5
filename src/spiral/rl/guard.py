"""The reward-hacking guard: the critic's reward and the judge's verdict, side by side on a fixed
probe set. A policy that learns to please the critic without doing the step shows as reward going
up while judged success goes down; then training should stop before the weights get worse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ProbeReading:
    iteration: int
    reward: float  # mean critic reward on the probes
    judged: float  # share of probes the judge (the oracle) passes


@dataclass
class RewardHackingGuard:
    """Fires when, against any of the last `window` readings, the reward rose by at least
    `reward_rise` while judged success fell by at least `judged_drop`. Comparing with every recent
    reading, not only the previous one, catches a slow drift that no single interval shows."""

    window: int = 5
    reward_rise: float = 0.02
    judged_drop: float = 0.05
    readings: list[ProbeReading] = field(default_factory=list)

    def add(self, reading: ProbeReading) -> str | None:
        earlier = self.readings[-self.window :]
        self.readings.append(reading)
        for then in earlier:  # oldest first: the message names the longest stretch
            if reading.reward - then.reward >= self.reward_rise and then.judged - reading.judged >= self.judged_drop:
                return (
                    f"reward hacking suspected at iteration {reading.iteration}: since iteration {then.iteration} the "
                    f"critic's reward rose {then.reward:.3f} -> {reading.reward:.3f} while the judge's success fell "
                    f"{then.judged:.3f} -> {reading.judged:.3f}"
                )
        return None

    def to_list(self) -> list[dict]:
        return [asdict(r) for r in self.readings]

    def load(self, readings: list[dict]) -> None:
        self.readings = [ProbeReading(**r) for r in readings]
