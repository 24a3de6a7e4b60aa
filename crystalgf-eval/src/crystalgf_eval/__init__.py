"""Evaluation plugins of CrystalGF: relaxers, property predictors and metrics."""
