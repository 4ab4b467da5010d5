"""User-facing errors.

Everything SPIRAL raises on bad input is a `SpiralError` whose message says what was wrong and how
to fix it; the CLI prints the message (no traceback) and exits with status 2.
"""


class SpiralError(Exception):
    """Bad input or a broken file, explained for a person."""


class UnknownTokenError(SpiralError, ValueError):
    """A word in an instruction or goal that the grammar does not know."""

    def __init__(self, kind: str, token: str, known: list[str] | tuple[str, ...]):
        self.kind, self.token, self.known = kind, token, tuple(known)
        super().__init__(f"unknown {kind} {token!r}; known {kind}s: {', '.join(self.known)}")


class AgentUnavailable(SpiralError):
    """An agent's server could not be used (unreachable, failing after its retries, too slow): the
    infrastructure failed, not the method, so the bench records the episode as errored and redoes it."""


class DatasetError(SpiralError):
    """A dataset file that is missing or corrupt."""
