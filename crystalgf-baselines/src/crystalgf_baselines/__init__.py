"""Baseline constraint and structure generators of CrystalGF."""
