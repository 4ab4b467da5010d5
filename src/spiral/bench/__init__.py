"""ActWM-Bench: task suites, methods, a judge that is not the critic, resumable and sharded runs,
and a report. `spiral bench run` / `spiral bench report` (cli.py)."""
