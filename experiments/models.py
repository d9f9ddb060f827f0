"""Experiment tables (A/B tests, canary rollouts) arrive with their issue."""
