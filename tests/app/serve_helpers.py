"""What the `spiral serve` tests share: the scene and goal they run, and a server started as a person would."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
SCENE = 4
# A canonical goal of scene 4 (spiral.demo.demo_request(4, "medium").judge): the symbolic planner reads it.
GOAL = "clear the bottom side, then stack the purple triangle on the yellow circle"


class Server:
    """`spiral serve` on a free port, in its own process; `url` once it listens."""

    def __init__(self, root: Path, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "spiral.cli", "serve", "--port", "0", "--root", str(root), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)  # fmt: skip
        line = self.proc.stdout.readline()  # the server prints its address once it listens
        found = re.search(r"http://\S+/", line)
        if found is None:
            self.stop()
            raise AssertionError(f"spiral serve did not start: {line}{self.proc.stdout.read()}")
        self.url = found.group(0)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as a service manager would: the server ends its runs and exits; its exit code."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        began = time.time()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"spiral serve did not stop within {time.time() - began:.0f} s of SIGTERM") from None
