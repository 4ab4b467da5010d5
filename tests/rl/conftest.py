"""The RL tests build tiny diffusers pipelines with tests/worldmodels/diffusers_tiny.py, and talk to
the scripted chat server of tests/agents/chat_server.py."""

import sys
from pathlib import Path

for folder in ("worldmodels", "agents"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / folder))
