"""GRPO post-training of world models (Flow-GRPO formulation)."""
