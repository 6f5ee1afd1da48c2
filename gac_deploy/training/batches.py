"""One training step's images: this process's share of the global batch, augmented and
(optionally) CutMix-ed.

Every random choice is a pure function of the run's seed, the step and an image's
position in the global batch: the crop and flip of position p come from a generator
seeded by (seed, step, p), and CutMix's box and pairing are drawn for the whole global
batch from a generator seeded by (seed, step) that every process holds. So N processes
see, position for position, the images one process sees on the same global batch, and a
resumed run repeats the interrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from gac_deploy.data import ArrayDataset, FolderDataset
from gac_deploy.training.distributed import World, shard


def augment_seed(seed: int, step: int, position: int) -> int:
    """Seed of the augmentation of global-batch position ``position`` at ``step``."""
    state = np.random.SeedSequence([seed, step, position]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))  # below 2**63: a valid torch seed


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator every process draws the step's batch-wide choices from."""
    return torch.Generator().manual_seed(seed * 7_919 + step)


@dataclass(frozen=True)
class CutMixBox:
    """Where CutMix pastes: rows [top, bottom) and columns [left, right) of each image come
    from the image at global position ``partners[p]``."""

    top: int
    bottom: int
    left: int
    right: int
    partners: torch.Tensor  # [B] int64, a permutation of the global batch positions

    def kept(self, h: int, w: int) -> float:
        """Fraction of each image that stays its own (the weight of its own label)."""
        return 1 - (self.bottom - self.top) * (self.right - self.left) / (h * w)


def draw_cutmix(
    batch_size: int, h: int, w: int, alpha: float, generator: torch.Generator
) -> CutMixBox:
    """CutMix (Yun et al. 2019): area ratio lambda ~ Beta(alpha, alpha), a box of area
    (1 - lambda) h w centred uniformly (clipped at the border), and a random pairing."""
    lam = float(
        np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator))).beta(
            alpha, alpha
        )
    )
    partners = torch.randperm(batch_size, generator=generator)
    cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    return CutMixBox(
        top=max(cy - cut_h // 2, 0),
        bottom=min(cy + cut_h // 2, h),
        left=max(cx - cut_w // 2, 0),
        right=min(cx + cut_w // 2, w),
        partners=partners,
    )


def paste(
    x: torch.Tensor,
    y: torch.Tensor,
    partner_x: torch.Tensor,
    partner_y: torch.Tensor,
    box: CutMixBox,
    classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n, C, H, W] with the box taken from ``partner_x``; soft targets [n, classes]
    weighted by area."""
    x = x.clone()
    x[:, :, box.top : box.bottom, box.left : box.right] = partner_x[
        :, :, box.top : box.bottom, box.left : box.right
    ]
    kept = box.kept(x.shape[-2], x.shape[-1])
    return x, kept * F.one_hot(y, classes).float() + (1 - kept) * F.one_hot(partner_y, classes)


def load_share(
    dataset: ArrayDataset | FolderDataset,
    batch: torch.Tensor,
    world: World,
    seed: int,
    step: int,
    classes: int,
    cutmix_alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This process's share of the global batch ``batch`` (dataset indices [B]).

    Returns images [n, C, H, W], their labels [n] and the training targets: the labels, or
    soft targets [n, classes] when CutMix applies (to half of the steps, when alpha > 0).
    """
    positions = shard(torch.arange(len(batch)), world)

    def load(at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seeds = [augment_seed(seed, step, int(p)) for p in at]
        return dataset.batch(batch[at], train=True, seeds=seeds)

    x, y = load(positions)
    generator = step_generator(seed, step)
    if cutmix_alpha <= 0 or torch.rand(1, generator=generator).item() >= 0.5:
        return x, y, y
    box = draw_cutmix(len(batch), x.shape[-2], x.shape[-1], cutmix_alpha, generator)
    partners = box.partners[positions]
    if world.distributed:  # partners may live in another process's share: load them here
        partner_x, partner_y = load(partners)
    else:
        partner_x, partner_y = x[partners], y[partners]
    mixed, target = paste(x, y, partner_x, partner_y, box, classes)
    return mixed, y, target
