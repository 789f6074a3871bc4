"""Launching many runs: sweeps of trials, here as processes or on SLURM."""
