"""CrystalGF H: the symmetry-constrained, property-conditioned diffusion generator."""
