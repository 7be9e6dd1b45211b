"""Baseline policies for comparison (one file each). All obey every hard constraint: they
choose only among the targets the shared `Ledger` reports feasible."""

from heddle.optimizer.baselines import cheapest, least_loaded, ray_hybrid, round_robin

__all__ = ["cheapest", "least_loaded", "ray_hybrid", "round_robin"]
