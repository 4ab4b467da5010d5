"""ActWM-Dataset: episodes of (goal, chain of thought, steps with clips and critic annotations)."""
