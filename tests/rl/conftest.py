"""The RL tests build tiny diffusers pipelines with tests/worldmodels/diffusers_tiny.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worldmodels"))
