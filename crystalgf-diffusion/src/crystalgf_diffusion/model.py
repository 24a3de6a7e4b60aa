"""The denoiser: message passing over all atom pairs of a crystal, fused with property tokens by
multi-head cross-attention (the method's Eq. B2-B4 on DiffCSP++'s network)."""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import asdict, dataclass

import torch
from torch import nn

from crystalgf_diffusion.batch import PROPERTIES


@dataclass
class DenoiserConfig:
    """Hyper-parameters; the defaults are the method's, :meth:`small` the shipped CPU preset."""

    layers: int = 6
    hidden: int = 512
    atom_dim: int = 512
    property_dim: int = 128
    fourier: int = 128
    heads: int = 2
    time_dim: int = 128
    rbf_centers: int = 64
    property_ranges: tuple[tuple[float, float], ...] = ((0.0, 10.0), (-5.0, 5.0))

    @classmethod
    def small(cls) -> DenoiserConfig:
        return cls(layers=4, hidden=128, atom_dim=128, property_dim=64, fourier=16, heads=2, time_dim=64)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DenoiserConfig:
        return cls(**{**data, "property_ranges": tuple(tuple(r) for r in data["property_ranges"])})


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of times in [0, 1]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    angles = 1000.0 * t[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class PropertyEmbedding(nn.Module):
    """Each property value -> Gaussian RBF expansion between preset bounds -> MLP (Eq. B2), plus a
    learned "absent" token per property (for unconditional use and classifier-free guidance)."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.register_buffer("low", torch.tensor([r[0] for r in config.property_ranges]))
        self.register_buffer("high", torch.tensor([r[1] for r in config.property_ranges]))
        self.centers = config.rbf_centers
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(config.rbf_centers, config.property_dim), nn.SiLU(),
                                                nn.Linear(config.property_dim, config.property_dim))
                                  for _ in PROPERTIES)
        self.absent = nn.Parameter(torch.randn(len(PROPERTIES), config.property_dim) * 0.02)

    def forward(self, values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, P) values and presence -> (B, P, property_dim) tokens."""
        grid = torch.linspace(0.0, 1.0, self.centers, device=values.device)
        scaled = ((values - self.low) / (self.high - self.low)).clamp(-0.1, 1.1)
        width = 1.0 / self.centers
        rbf = torch.exp(-((scaled[..., None] - grid) ** 2) / (2 * width**2))
        tokens = torch.stack([mlp(rbf[:, i]) for i, mlp in enumerate(self.mlps)], dim=1)
        return torch.where(present[..., None], tokens, self.absent[None].expand_as(tokens))


class Layer(nn.Module):
    """One message-passing layer followed by cross-attention of atoms to their crystal's property tokens."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        h = config.hidden
        self.edge = nn.Sequential(nn.Linear(2 * h + 6 + 6 * config.fourier, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU())
        self.node = nn.Sequential(nn.Linear(2 * h, h), nn.SiLU(), nn.Linear(h, h))
        self.norm = nn.LayerNorm(h)
        self.to_tokens = nn.Linear(config.property_dim, h)
        self.attention = nn.MultiheadAttention(h, config.heads, batch_first=True)
        self.attention_norm = nn.LayerNorm(h)

    def forward(self, h: torch.Tensor, edges: torch.Tensor, edge_features: torch.Tensor, atom_lattice: torch.Tensor,
                atom_crystal: torch.Tensor, atom_counts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        messages = self.messages(h, edges, edge_features, atom_lattice)
        aggregated = torch.zeros_like(h).index_add_(0, edges[1], messages) / atom_counts[atom_crystal, None]
        h = self.norm(h + self.node(torch.cat([h, aggregated], dim=-1)))
        keys = self.to_tokens(tokens)[atom_crystal]
        attended, _ = self.attention(h[:, None], keys, keys, need_weights=False)
        return self.attention_norm(h + attended[:, 0])

    def messages(self, h: torch.Tensor, edges: torch.Tensor, edge_features: torch.Tensor,
                 atom_lattice: torch.Tensor) -> torch.Tensor:
        """The edge MLP on [h_target, h_source, Fourier features of the pair, lattice of the crystal] of
        every pair. The parts of its first linear map that depend on one atom (its state, its crystal's
        lattice) are mapped once per atom and gathered, and without autograd the sums and activations are
        done in place: the same numbers as on the concatenation, far fewer operations."""
        source, target = edges
        first, second, width = self.edge[0], self.edge[2], h.shape[1]
        lattice_start = 2 * width + edge_features.shape[1]  # first column of the lattice part
        if lattice_start + atom_lattice.shape[1] != first.in_features:
            raise ValueError(f"edge inputs of {lattice_start + atom_lattice.shape[1]} columns, the layer takes {first.in_features}")
        pre = edge_features @ first.weight[:, 2 * width:lattice_start].T
        per_target = torch.addmm(torch.addmm(first.bias, h, first.weight[:, :width].T), atom_lattice,
                                 first.weight[:, lattice_start:].T)
        pre += per_target.index_select(0, target)
        pre += (h @ first.weight[:, width:2 * width].T).index_select(0, source)
        in_place = not torch.is_grad_enabled()
        hidden = nn.functional.silu(pre, inplace=in_place)
        return nn.functional.silu(torch.addmm(second.bias, hidden, second.weight.T), inplace=in_place)


class Denoiser(nn.Module):
    """Predicts the lattice noise (B, 6) and the fractional-coordinate score of every atom (A, 3)."""

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None = None, device: str = "cpu") -> Denoiser:
        """The checked network of a checkpoint folder or shipped checkpoint name, in eval mode, in one line:
        ``Denoiser.from_checkpoint("perov5-small")`` (default ``general-small``; see
        :func:`crystalgf_diffusion.checkpoint.checkpoint_directory`)."""
        from crystalgf_diffusion.checkpoint import checkpoint_directory, load_checkpoint

        return load_checkpoint(checkpoint_directory(checkpoint, "diffusion checkpoint"), device)[0]

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = config
        self.atoms = nn.Embedding(119, config.atom_dim)
        self.time_dim = config.time_dim
        self.properties = PropertyEmbedding(config)
        self.inputs = nn.Linear(config.atom_dim + config.time_dim + 6, config.hidden)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.layers))
        self.coordinate_head = nn.Linear(config.hidden, 3, bias=False)
        self.lattice_head = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.SiLU(),
                                          nn.Linear(config.hidden, 6))
        self.register_buffer("frequencies", torch.arange(1, config.fourier + 1, dtype=torch.float32))
        # Statistics of the free lattice coefficients in the training data: the lattice is
        # diffused in standardised units z = (k - bias - mean) / std.
        self.register_buffer("k_mean", torch.zeros(6))
        self.register_buffer("k_std", torch.ones(6))

    def forward(self, batch: dict[str, torch.Tensor], k: torch.Tensor, x: torch.Tensor, t: torch.Tensor,
                present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``k``: standardised lattice coefficients z_t (B, 6); ``x``: fractional coordinates (A, 3)."""
        atom_crystal, edges = batch["atom_crystal"], batch["edges"]
        counts = torch.bincount(atom_crystal, minlength=len(k)).clamp(min=1).to(x.dtype)
        atom_lattice = k[atom_crystal]
        h = self.inputs(torch.cat([self.atoms(batch["atom_type"]), sinusoidal(t, self.time_dim)[atom_crystal],
                                   atom_lattice], -1))
        tokens = self.properties(batch["properties"], present)
        source, target = edges
        difference = x[source] - x[target]
        angles = 2 * math.pi * difference[..., None] * self.frequencies
        edge_features = torch.cat([angles.sin().flatten(1), angles.cos().flatten(1)], -1)
        for layer in self.layers:
            h = layer(h, edges, edge_features, atom_lattice, atom_crystal, counts, tokens)
        pooled = torch.zeros(len(k), h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, atom_crystal, h) / counts[:, None]
        return self.lattice_head(pooled), self.coordinate_head(h)


def all_pair_edges(atom_crystal: torch.Tensor) -> torch.Tensor:
    """(2, E) source/target indices of all ordered atom pairs (self-pairs included) within each crystal,
    source-major; the atoms of a crystal are contiguous (``atom_crystal`` is sorted), as in every batch."""
    counts = torch.bincount(atom_crystal)
    starts = torch.cumsum(counts, 0) - counts
    pair_counts = counts * counts
    crystal = torch.repeat_interleave(torch.arange(len(counts), device=atom_crystal.device), pair_counts)
    pair = torch.arange(len(crystal), device=atom_crystal.device) - (torch.cumsum(pair_counts, 0) - pair_counts)[crystal]
    size = counts[crystal]
    return torch.stack([starts[crystal] + pair // size, starts[crystal] + pair % size])
