"""What `spiral serve` takes on its command line, and the limits of what its page may ask for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spiral.config import option
from spiral.errors import SpiralError

# The only backends the page offers: the embedded ones, which need no server or API key.
PAGE_PLANNERS = ("lm", "symbolic")
PAGE_CRITICS = ("learned", "oracle")
UPLOAD_BYTES = 10 * 2**20
UPLOAD_SIDE = 4096  # pixels, each of width and height


@dataclass(frozen=True)
class ServeConfig:
    host: str = option("127.0.0.1", "address to listen on (the default serves this machine only)")
    port: int = option(8000, "port to listen on (0: any free port, printed at start)")
    root: Path = option(Path("out/serve"), "folder of run folders: runs started from the page go here; the page lists them")
    queue: int = option(1, "how many runs go at once; the others wait in a queue")
    world_model_path: str | None = option(None, "tabletop world-model weights passed to every run (None: the shipped ones)")
    cancel_grace: float = option(5.0, "seconds a cancelled run gets to stop after SIGTERM before SIGKILL")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SpiralError(f"--port must be in 0..65535, got {self.port}")
        if self.queue < 1:
            raise SpiralError(f"--queue must be >= 1, got {self.queue}")
        if self.cancel_grace <= 0:
            raise SpiralError(f"--cancel-grace must be > 0, got {self.cancel_grace}")
        if self.world_model_path is not None and not Path(self.world_model_path).is_file():
            raise SpiralError(f"--world-model-path {self.world_model_path} is not a file: give a weights file, or leave it out")
