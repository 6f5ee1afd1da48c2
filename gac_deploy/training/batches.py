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

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from gac_deploy.data import ArrayDataset, FolderDataset
from gac_deploy.errors import UserError
from gac_deploy.world import World, shard

_MASK64 = 2**64 - 1


def _splitmix64(x: int) -> int:
    """One step of the SplitMix64 mixer (Steele et al. 2014) on a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def augment_seed(seed: int, step: int, position: int) -> int:
    """Seed of the augmentation of global-batch position ``position`` at ``step``: a hash
    of the three, below 2**63 (a valid torch seed)."""
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ step) ^ position) >> 1


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


@dataclass(frozen=True)
class StepPlan:
    """What one process loads for one optimiser step, and how it mixes it."""

    items: list[tuple[int, int]]  # (dataset index, augmentation seed): the share, then partners
    share: int  # the first ``share`` items are this process's images
    batch_size: int  # of the global batch
    box: CutMixBox | None = None
    partners: torch.Tensor | None = None  # [share]: the loaded item pasted into each image


def plan_step(
    batch: torch.Tensor,
    world: World,
    seed: int,
    step: int,
    image_size: int,
    cutmix_alpha: float = 0.0,
) -> StepPlan:
    """This process's part of the global batch ``batch`` (dataset indices [B]) at ``step``.

    CutMix applies to half of the steps when alpha > 0. With several processes an image's
    partner may lie in another process's share; it is then loaded here as well.
    """
    positions = shard(torch.arange(len(batch)), world)

    def items(at: torch.Tensor) -> list[tuple[int, int]]:
        return [(int(batch[p]), augment_seed(seed, step, int(p))) for p in at]

    own = items(positions)
    generator = step_generator(seed, step)
    if cutmix_alpha <= 0 or torch.rand(1, generator=generator).item() >= 0.5:
        return StepPlan(own, len(own), len(batch))
    box = draw_cutmix(len(batch), image_size, image_size, cutmix_alpha, generator)
    partners = box.partners[positions]
    if world.distributed:
        extra = torch.arange(len(own), 2 * len(own))
        return StepPlan(own + items(partners), len(own), len(batch), box, extra)
    return StepPlan(own, len(own), len(batch), box, partners)  # positions are the rows


def assemble(
    x: torch.Tensor, y: torch.Tensor, plan: StepPlan, classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From a plan's loaded items (images [m, C, H, W], labels [m]): this process's images
    [n, C, H, W], their labels [n], and the training targets (the labels, or soft targets
    [n, classes] where CutMix applies)."""
    own_x, own_y = x[: plan.share], y[: plan.share]
    if plan.box is None:
        return own_x, own_y, own_y
    mixed, target = paste(own_x, own_y, x[plan.partners], y[plan.partners], plan.box, classes)
    return mixed, own_y, target


class _Items(Dataset):
    """Single images by (dataset index, augmentation seed), for a DataLoader's workers."""

    def __init__(self, dataset: ArrayDataset | FolderDataset, train: bool) -> None:
        self.dataset, self.train = dataset, train

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item
        seeds = [seed] if self.train else None
        x, y = self.dataset.batch(torch.tensor([index]), train=self.train, seeds=seeds)
        return x[0], y[0]


def load_ahead(
    dataset: ArrayDataset | FolderDataset,
    item_lists: Iterable[list[tuple[int, int]]],
    workers: int = 0,
    train: bool = True,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Images [n, C, H, W] and labels [n] of each list of (dataset index, augmentation
    seed) items, in order (augmented when ``train``; the seeds are ignored otherwise).
    ``workers`` > 0: loaded ahead by that many processes (torch's DataLoader;
    ``pin_memory`` for copies to a GPU); the images are the same either way."""
    if workers == 0:
        for items in item_lists:
            indices, seeds = zip(*items, strict=True)
            yield dataset.batch(torch.tensor(indices), train=train, seeds=seeds if train else None)
        return
    try:
        yield from DataLoader(
            _Items(dataset, train),
            batch_sampler=item_lists,
            num_workers=workers,
            pin_memory=pin_memory,
        )
    except UserError as exc:  # re-raised by the DataLoader with the worker's traceback
        raise UserError(str(exc).strip().splitlines()[-1].split("UserError: ", 1)[-1]) from None


def load_steps(
    dataset: ArrayDataset | FolderDataset,
    plans: Iterable[StepPlan],
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[StepPlan, tuple[torch.Tensor, torch.Tensor]]]:
    """Each plan with its loaded items (images, labels), in order, through
    :func:`load_ahead`; ``plans`` is consumed lazily."""
    pending: deque[StepPlan] = deque()  # planned and handed to the loader, not yet yielded

    def item_lists() -> Iterator[list[tuple[int, int]]]:
        for plan in plans:
            pending.append(plan)
            yield plan.items

    for loaded in load_ahead(dataset, item_lists(), workers, True, pin_memory):
        yield pending.popleft(), loaded


def default_workers(dataset: ArrayDataset | FolderDataset, world: World) -> int:
    """Loader processes when not set: none for images held in memory, otherwise up to 8
    per training process, sharing the machine's cores."""
    if isinstance(dataset, ArrayDataset):
        return 0
    return max(1, min(8, (os.cpu_count() or 1) // world.size))
