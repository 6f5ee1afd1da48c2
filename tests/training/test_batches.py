"""A process's share of a global batch is, row for row, what one process sees at those
positions: augmentation and CutMix included."""

import torch

from gac_deploy.data import load_dataset
from gac_deploy.testing import write_cifar, write_imagenet
from gac_deploy.training.batches import (
    CutMixBox,
    assemble,
    augment_seed,
    default_workers,
    draw_cutmix,
    load_ahead,
    load_steps,
    paste,
    plan_step,
)
from gac_deploy.world import World


def share(split, batch, world, seed, step, workers=0):
    plan = plan_step(batch, world, seed, step, split.image_size, cutmix_alpha=1.0)
    ((_, loaded),) = load_steps(split.train, [plan], workers)
    return assemble(*loaded, plan, split.num_classes)


def test_shares_of_two_processes_are_the_rows_of_one(tmp_path):
    write_cifar(tmp_path / "c", 10, per_file=7)
    split = load_dataset("cifar10", str(tmp_path / "c"))
    batch = torch.tensor([3, 17, 5, 30, 11, 0, 24])  # odd size: shares of 4 and 3
    mixed_steps = 0
    for step in range(6):
        x, y, target = share(split, batch, World(), 5, step)
        assert x.shape == (7, 3, 32, 32) and torch.equal(y, split.train.labels[batch])
        mixed = target.dim() == 2
        mixed_steps += mixed
        if mixed:
            torch.testing.assert_close(target.sum(1), torch.ones(7))
        for rank in (0, 1):
            xr, yr, tr = share(split, batch, World(rank, 2), 5, step)
            assert torch.equal(xr, x[rank::2]) and torch.equal(yr, y[rank::2])
            assert torch.equal(tr, target[rank::2])
    assert 0 < mixed_steps < 6  # CutMix applies to some steps and not others
    first, _, _ = share(split, batch, World(), 5, 0)
    assert torch.equal(share(split, batch, World(), 5, 0)[0], first)
    assert not torch.equal(share(split, batch, World(), 6, 0)[0], first)


def test_loader_processes_load_the_same_images(tmp_path):
    write_imagenet(tmp_path / "i")
    split = load_dataset("imagenet", str(tmp_path / "i"))
    plans = [plan_step(torch.tensor(b), World(), 1, s, 224) for s, b in enumerate([[0, 5], [3]])]
    alone = list(load_steps(split.train, plans, workers=0))
    helped = list(load_steps(split.train, iter(plans), workers=2))  # plans taken lazily
    assert len(alone) == len(helped) == 2
    for (plan_a, (xa, ya)), (plan_b, (xb, yb)) in zip(alone, helped, strict=True):
        assert plan_a is plan_b and torch.equal(xa, xb) and torch.equal(ya, yb)
    assert [plan for plan, _ in alone] == plans
    assert alone[0][1][0].shape == (2, 3, 224, 224)
    assert default_workers(split.train, World()) >= 1
    val = [[(0, 0), (3, 0)], [(2, 0)]]  # evaluation: no augmentation, seeds ignored
    here = list(load_ahead(split.test, val, 0, train=False))
    ahead = list(load_ahead(split.test, val, 2, train=False))
    assert len(here) == len(ahead) == 2
    for (xa, ya), (xb, yb) in zip(here, ahead, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    centre, _ = split.test.batch(torch.tensor([0, 3]))
    assert torch.equal(next(load_ahead(split.test, val, 2, train=False))[0], centre)
    assert default_workers(load_dataset("digits").train, World()) == 0


def test_augment_seeds_differ_by_seed_step_and_position():
    seeds = {augment_seed(s, t, p) for s in range(3) for t in range(3) for p in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**63 for s in seeds)
    assert augment_seed(1, 2, 3) == augment_seed(1, 2, 3)


def test_cutmix_box_and_soft_targets():
    box = draw_cutmix(8, 32, 32, 1.0, torch.Generator().manual_seed(0))
    assert sorted(box.partners.tolist()) == list(range(8))
    assert 0 <= box.top <= box.bottom <= 32 and 0 <= box.left <= box.right <= 32
    fixed = CutMixBox(top=0, bottom=16, left=0, right=8, partners=torch.tensor([1, 0]))
    x, partner = torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32)
    mixed, target = paste(x, torch.tensor([0, 1]), partner, torch.tensor([2, 2]), fixed, 3)
    assert mixed.sum().item() == 2 * 16 * 8 and x.sum().item() == 0  # input left untouched
    assert fixed.kept(32, 32) == 1 - 128 / 1024
    torch.testing.assert_close(target[0], torch.tensor([0.875, 0.0, 0.125]))
    torch.testing.assert_close(target[1], torch.tensor([0.0, 0.875, 0.125]))
