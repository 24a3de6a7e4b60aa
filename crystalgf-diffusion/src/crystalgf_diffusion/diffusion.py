"""Training loss and predictor-corrector sampling: DDPM on the lattice coefficients, wrapped-normal
score matching on the Wyckoff free parameters (on the torus)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from crystalgf_diffusion.batch import expand, pull_back
from crystalgf_diffusion.lattice import BIASES, MASKS
from crystalgf_diffusion.model import Denoiser, all_pair_edges

TIMESTEPS = 1000
SIGMA_MIN, SIGMA_MAX = 0.005, 0.5


def alpha_bars(steps: int = TIMESTEPS) -> torch.Tensor:
    """Cosine schedule: cumulative products of alpha for t = 1..steps (index t-1)."""
    t = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return (f[1:] / f[0]).clamp(min=1e-5).float()


def sigmas(t: torch.Tensor) -> torch.Tensor:
    """Noise level of the free parameters at time t in (0, 1] (geometric between SIGMA_MIN and SIGMA_MAX)."""
    return SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t


def wrapped_normal_score(displacement: torch.Tensor, sigma: torch.Tensor, images: int = 3) -> torch.Tensor:
    """d/dx log of the wrapped normal density centred at 0 with width sigma, at ``displacement``."""
    shifts = torch.arange(-images, images + 1, dtype=displacement.dtype, device=displacement.device)
    d = displacement[..., None] + shifts
    weights = torch.softmax(-(d**2) / (2 * sigma[..., None] ** 2), dim=-1)
    return -(weights * d).sum(-1) / sigma**2


def prepare(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the pair list and per-crystal masks and biases of the lattice coefficients."""
    batch["edges"] = all_pair_edges(batch["atom_crystal"])
    batch["k_mask"] = MASKS.to(batch["k"].device)[batch["family"]]
    batch["k_bias"] = BIASES.to(batch["k"].device)[batch["family"]]
    return batch


def training_loss(model: Denoiser, batch: dict[str, torch.Tensor], property_dropout: float = 0.2,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Denoising loss on a batch of real crystals (the total and its detached lattice and coordinate
    parts); properties are dropped with ``property_dropout``. The random draws come from ``generator``
    on the CPU, so a seed gives the same draws on every device."""
    device = batch["k"].device
    crystals = len(batch["k"])
    step = torch.randint(1, TIMESTEPS + 1, (crystals,), generator=generator)
    t = (step.float() / TIMESTEPS).to(device)
    alpha_bar = alpha_bars()[step - 1].to(device)
    mask = batch["k_mask"]
    noise_k = torch.randn(crystals, 6, generator=generator).to(device) * mask
    z_t = alpha_bar.sqrt()[:, None] * standardise(model, batch) + (1 - alpha_bar).sqrt()[:, None] * noise_k
    sigma = sigmas(t)[batch["orbit_crystal"]][:, None].expand(-1, 3)
    noise_f = torch.randn(batch["f"].shape, generator=generator).to(device) * batch["free"]
    f_t = torch.remainder(batch["f"] + sigma * noise_f, 1.0)
    target = wrapped_normal_score(sigma * noise_f, sigma) * batch["free"]
    keep = torch.rand(batch["has_property"].shape, generator=generator).to(device) >= property_dropout
    predicted_noise, atom_scores = model(batch, z_t, expand(batch, f_t), t, batch["has_property"] & keep)
    scores = orbit_scores(batch, atom_scores)
    lattice_loss = (((predicted_noise - noise_k) * mask) ** 2).sum() / mask.sum().clamp(min=1)
    free = batch["free"].sum().clamp(min=1)
    coordinate_loss = (((scores - target) * sigma * batch["free"]) ** 2).sum() / free
    return lattice_loss + coordinate_loss, {"lattice": lattice_loss.detach(), "coordinates": coordinate_loss.detach()}


def standardise(model: Denoiser, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Lattice coefficients in the model's standardised units (0 where the family fixes them)."""
    return (batch["k"] - batch["k_bias"] - model.k_mean) / model.k_std * batch["k_mask"]


def orbit_scores(batch: dict[str, torch.Tensor], atom_scores: torch.Tensor) -> torch.Tensor:
    """Average over each orbit of the per-atom scores pulled back to the free parameters."""
    multiplicity = torch.bincount(batch["atom_orbit"], minlength=len(batch["f"])).clamp(min=1)
    return pull_back(batch, atom_scores) / multiplicity[:, None]


@torch.no_grad()
def sample(model: Denoiser, batch: dict[str, torch.Tensor], seeds: Sequence[int], steps: int = 100,
           guidance: float = 1.0, noise: float = 0.0, corrector_step: float = 1e-5,
           on_step: Callable[[], None] | None = None,
           steer: Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]] | None = None,
           steer_from: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw lattice coefficients (B, 6) and free parameters (orbits, 3) for every crystal of a batch.

    Each crystal's noise comes from its own seed, so a crystal's sample does not depend on the
    batch around it. ``guidance`` > 1 applies classifier-free guidance toward the target properties.
    ``noise`` scales the noise injected by every predictor and corrector step: 1 is DiffCSP++'s
    stochastic sampler, 0 (the default) keeps only the random starting point, which places atoms
    closer to the true structures (benchmarks/results/csp_perov_5.md). ``steer``, where given, is called at
    every step with t <= ``steer_from`` with the predicted clean lattice coefficients (B, 6) and the
    current free parameters, and returns both adjusted (e.g. atoms pushed apart): the lattice step then
    moves toward the adjusted prediction and sampling goes on from the adjusted parameters.
    """
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    orbit_counts = torch.bincount(batch["orbit_crystal"], minlength=len(seeds)).tolist()

    device = batch["k_mask"].device

    def noise_k() -> torch.Tensor | float:
        return torch.stack([torch.randn(6, generator=g) for g in generators]).to(device) if noise else 0.0

    def noise_f() -> torch.Tensor | float:
        return torch.cat([torch.randn(n, 3, generator=g) for g, n in zip(generators, orbit_counts)]).to(device) \
            if noise else 0.0

    def uniform_f() -> torch.Tensor:
        return torch.cat([torch.rand(n, 3, generator=g) for g, n in zip(generators, orbit_counts)]).to(device)

    mask, bias, free = batch["k_mask"], batch["k_bias"], batch["free"]
    present = batch["has_property"]
    grid = torch.linspace(TIMESTEPS, 1, steps).round().long()
    bars = alpha_bars().to(device)
    z = torch.stack([torch.randn(6, generator=g) for g in generators]).to(device) * mask
    f = uniform_f() * free

    def predict(k_t, f_t, t):
        crystals = len(k_t)
        time = torch.full((crystals,), t, device=device)
        noise, atoms = model(batch, k_t, expand(batch, f_t), time, present)
        scores = orbit_scores(batch, atoms)
        if guidance != 1.0 and present.any():
            plain_noise, plain_atoms = model(batch, k_t, expand(batch, f_t), time, torch.zeros_like(present))
            plain_scores = orbit_scores(batch, plain_atoms)
            noise = plain_noise + guidance * (noise - plain_noise)
            scores = plain_scores + guidance * (scores - plain_scores)
        return noise * mask, scores * free

    for index, step in enumerate(grid):
        t = step.item() / TIMESTEPS
        previous = grid[index + 1].item() if index + 1 < len(grid) else 0
        sigma = sigmas(torch.tensor(t)).item()
        sigma_previous = sigmas(torch.tensor(previous / TIMESTEPS)).item() if previous else 0.0
        # Corrector: one Langevin step on the free parameters at the current noise level.
        _, scores = predict(z, f, t)
        size = corrector_step * (sigma / SIGMA_MIN) ** 2
        f = torch.remainder(f + size * scores + noise * math.sqrt(2 * size) * noise_f() * free, 1.0) * free
        # Predictor: reverse diffusion of the free parameters and a DDPM step of the lattice.
        predicted_noise, scores = predict(z, f, t)
        variance = sigma**2 - sigma_previous**2
        f = torch.remainder(f + variance * scores + noise * math.sqrt(variance) * noise_f() * free, 1.0) * free
        bar, bar_previous = bars[step - 1], (bars[previous - 1] if previous else torch.tensor(1.0, device=device))
        z0 = ((z - (1 - bar).sqrt() * predicted_noise) / bar.sqrt()).clamp(-6, 6)
        if steer is not None and t <= steer_from:
            k0, f = steer((z0 * model.k_std + model.k_mean) * mask + bias, f, t)
            z0 = (k0 - bias - model.k_mean) / model.k_std * mask
        beta = 1 - bar / bar_previous
        mean = (bar_previous.sqrt() * beta / (1 - bar)) * z0 + ((1 - beta).sqrt() * (1 - bar_previous) / (1 - bar)) * z
        spread = (beta * (1 - bar_previous) / (1 - bar)).clamp(min=0).sqrt() if previous else 0.0
        z = (mean + noise * spread * noise_k()) * mask
        if on_step is not None:
            on_step()
    return (z * model.k_std + model.k_mean) * mask + bias, f
