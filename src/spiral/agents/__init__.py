"""PlanAgent and CriticAgent protocols and their backends."""
