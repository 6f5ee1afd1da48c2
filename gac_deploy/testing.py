"""Builders of test and bench data, in the spirit of ``numpy.testing``: for the tests
(``tests/``) and the benchmarks (``bench/``), one importable home so that neither imports
the other; the CLI does not use this module.

* the authors' checkpoints: :func:`authors_state_dict` (our model's tensors under their
  key names), :func:`calibrated_official` (a random authors-format model whose
  populations fire at moderate rates);
* BatchNorm calibration to realistic firing rates, two kinds:
  :func:`calibrate_rates_by_role` (the benches') and :func:`calibrate_official_rates`
  (:func:`calibrated_official`'s);
* datasets in their on-disk formats with random pixels: :func:`write_cifar`,
  :func:`write_imagenet`;
* :func:`bundle_facts`: the counts of an exported bundle that benches print;
  :func:`run_stage`: a ``gac-deploy`` command in its own process, timed, with its peak
  memory; :func:`work_directory`: where a bench keeps its files;
* the straightforward form of a training step (the GAC encoder computed at every step,
  LIF neurons differentiated by autograd through a per-step loop) that
  ``bench/train_speed.py`` times, and :func:`check_equal`, which compares its gradients
  with the model's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

import gac_deploy.models.lif as lif
import gac_deploy.models.msresnet as msresnet
from gac_deploy.models import build_model, default_config
from gac_deploy.models.lif import lif_forward_autograd
from gac_deploy.models.msresnet import COMPOSED
from gac_deploy.models.official import import_official


def authors_state_dict(model, aliases=False, prefix=""):
    """Our model's tensors under the authors' key names (from the facts file), written out."""
    sd = model.state_dict()
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def bn_key(base, j):  # base: "" or "layer1.0."; j: 1 or 2
        if aliases:
            return f"{base}conv{j}_s.bn.seqbn.module."
        return f"{base}bn{j}.bn."

    out = {}
    conv1 = "conv1_s.layer.module.weight" if aliases else "conv1.weight"
    out[conv1] = sd["encoder.conv.weight"]
    for k in bn:
        out[bn_key("", 1) + k] = sd[f"encoder.bn.{k}"]
    out["encoding.TA.sharedMLP.0.weight"] = sd["encoder.ta.mlp.0.weight"][..., None, None, None]
    out["encoding.TA.sharedMLP.2.weight"] = sd["encoder.ta.mlp.2.weight"][..., None, None, None]
    out["encoding.SCA.sharedMLP.0.weight"] = sd["encoder.sca.conv1.weight"]
    out["encoding.SCA.sharedMLP.2.weight"] = sd["encoder.sca.conv2.weight"]
    k = 0
    for s, stage in enumerate(model.config.stages, start=1):
        for i in range(stage.blocks):
            base = f"layer{s}.{i}."
            for j in (1, 2):
                key = f"{base}conv{j}_s.layer.module.weight" if aliases else f"{base}conv{j}.weight"
                out[key] = sd[f"blocks.{k}.conv{j}.conv.weight"]
                for b in bn:
                    out[bn_key(base, j) + b] = sd[f"blocks.{k}.conv{j}.bn.{b}"]
            if model.blocks[k].downsample is not None:
                out[f"{base}downsample.layer.module.weight"] = sd[
                    f"blocks.{k}.downsample.conv.weight"
                ]
                for b in bn:
                    out[f"{base}downsample.bn.bn.{b}"] = sd[f"blocks.{k}.downsample.bn.{b}"]
            k += 1
    fc = "fc1_s.layer.module." if aliases else "fc1."
    out[fc + "weight"], out[fc + "bias"] = sd["fc.weight"], sd["fc.bias"]
    return {prefix + key: value for key, value in out.items()}


def calibrated_official(config, images, seed=0):
    """Random weights; BatchNorm statistics measured on ``images`` (so each BN output is
    about N(beta, gamma^2)) with gamma, beta chosen for moderate rates
    (:func:`calibrate_official_rates`); then written in the authors' key format and
    imported as ``import-official`` does."""
    torch.manual_seed(seed)
    model = import_official(authors_state_dict(_random(config)), config)
    calibrate_official_rates(model, images)
    return import_official(authors_state_dict(model), config)


def calibrate_official_rates(model, images: torch.Tensor) -> None:
    """The BatchNorm calibration of :func:`calibrated_official`, in place, for the authors'
    networks (membrane shortcuts) as imported: random affine parameters, every body BN
    alike (gamma in [0.4, 0.8], beta in [-0.1, 0.3]), a stronger stem and the attention
    weights times 4, statistics measured on ``images`` (one train-mode pass, momentum 1).
    Not :func:`calibrate_rates_by_role`: different draws and ranges, so different rates."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.momentum = 1.0
            bn.weight.uniform_(0.4, 0.8)
            bn.bias.uniform_(-0.1, 0.3)
        # the stem drives the encoder LIF (threshold 1) at most steps, and stronger
        # attention weights spread the gate sigmoid(M * N) over (0, 1), so O reaches
        # block 1's LIF above its threshold where the gate exceeds 1/2
        model.encoder.bn.weight.uniform_(0.8, 1.2)
        model.encoder.bn.bias.uniform_(0.6, 1.2)
        for name, p in model.encoder.named_parameters():
            if name.startswith(("ta.", "sca.")):
                p.mul_(4.0)
        model.train()
        model(images)
        model.eval()


def _random(config):
    return build_model(config).eval()


def calibrate_rates_by_role(model, images: torch.Tensor) -> None:
    """Random BatchNorm affine parameters, statistics measured on ``images`` [N, 3, H, W]
    (one train-mode pass, momentum 1), chosen so that each population fires about 20-26 %
    of the time: the encoder's BN drives O (block 1's input), conv1's BN the block's
    second LIF, and the terms of the residual stream (conv2, downsample) stay centred
    lower, since each first LIF reads their sum. The attention weights are left as drawn.
    For a model built by :func:`gac_deploy.models.build_model`, either shortcut (the
    benches' calibration); not :func:`calibrate_official_rates`, which draws other
    ranges for every BN alike."""
    with torch.no_grad():
        model.encoder.bn.weight.uniform_(0.8, 1.2)
        model.encoder.bn.bias.uniform_(0.2, 0.6)
        for block in model.blocks:
            for name, beta in (("conv1", (-0.1, 0.3)), ("conv2", (-0.25, 0.15))) + (
                (("downsample", (-0.25, 0.15)),) if block.downsample is not None else ()
            ):
                bn = getattr(block, name).bn
                bn.weight.uniform_(0.4, 0.8)
                bn.bias.uniform_(*beta)
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.momentum = 1.0
        model.train()
        model(images)
    model.eval()


def write_cifar(root, classes, per_file=6, seed=0):
    """The official python layout with random pixels (protocol 2 pickles of numpy arrays)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)

    def batch(n):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, size=n).tolist()
        key = b"labels" if classes == 10 else b"fine_labels"
        return {b"data": data, key: labels, b"batch_label": b"x"}

    names = (
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if classes == 10
        else ["train", "test"]
    )
    for name in names:
        with open(root / name, "wb") as handle:
            pickle.dump(batch(per_file), handle, protocol=2)
    meta = "batches.meta" if classes == 10 else "meta"
    with open(root / meta, "wb") as handle:
        pickle.dump({b"label_names": [b"a"] * classes}, handle, protocol=2)


def write_imagenet(root, classes=("n01", "n02"), train=3, val=2, seed=0):
    """The ImageFolder layout with random JPEGs of several sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for part, count in (("train", train), ("val", val)):
        for cls in classes:
            folder = root / part / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(40 + 10 * i, 60, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img{i}.JPEG")


@dataclass(frozen=True)
class BundleFacts:
    """Counts of a Loihi 2 bundle; ``body_mb`` is body.net's size in MiB."""

    populations: int
    edges: int
    composed_edges: int
    neurons: int
    synapses: int
    cores: int
    chips: int
    chips_unrolled: int
    body_mb: float


def bundle_facts(bundle: Path) -> BundleFacts:
    """What a bench prints about an exported bundle, read from its manifest in one place."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    body, res = manifest["body"], manifest["resources"]
    return BundleFacts(
        populations=len(body["populations"]),
        edges=len(body["edges"]),
        composed_edges=sum(COMPOSED in e["layer"] for e in body["edges"]),
        neurons=res["neurons"],
        synapses=res["synapses"],
        cores=res["cores"],
        chips=res["chips_needed"],
        chips_unrolled=res["chips_needed_unrolled"],
        body_mb=(bundle / "body.net").stat().st_size / 2**20,
    )


@contextlib.contextmanager
def plain_lif():
    """Every LIF population differentiated by autograd through its per-step loop, and every
    conv input kept for backward as it is (float)."""
    original = lif.lif_forward
    lif.lif_forward = lif_forward_autograd
    msresnet.PACK_SPIKES = False
    try:
        yield
    finally:
        lif.lif_forward = original
        msresnet.PACK_SPIKES = True


def straightforward_encoder(encoder, image: torch.Tensor) -> torch.Tensor:
    """GAC as the authors' code runs it: [T*N] copies of the image through every stage."""
    t, n = encoder.time_steps, image.shape[0]
    f = encoder.bn(encoder.conv(image.unsqueeze(0).expand(t, *image.shape).flatten(0, 1)))
    f = f.view(t, n, *f.shape[1:])
    spikes = lif_forward_autograd(f, encoder.lif.config)
    m = (encoder.ta.mlp(f.mean(dim=(2, 3, 4)).T) + encoder.ta.mlp(f.amax(dim=(2, 3, 4)).T)).T
    sca = encoder.sca(f.flatten(0, 1)).view_as(f)
    return torch.sigmoid(m[:, :, None, None, None] * sca) * spikes


def straightforward_forward(model, image: torch.Tensor) -> torch.Tensor:
    """``model``'s output for ``image`` in the straightforward form that bench/train_speed.py
    times: :func:`straightforward_encoder`, then the body under :func:`plain_lif`."""
    with plain_lif():
        return model.body(straightforward_encoder(model.encoder, image)).mean(dim=0)


def check_equal(arch: str, time_steps: int) -> float:
    """Largest gradient difference between the two forms, the model's own and
    :func:`straightforward_forward` (float64, eval-mode BN)."""
    torch.manual_seed(0)
    model = build_model(default_config(arch, time_steps=time_steps)).double().eval()
    size = model.config.image_size
    image = torch.randn(2, model.config.in_channels, size, size, dtype=torch.float64)
    label = torch.tensor([0, 1])
    grads = []
    for forward in (model, lambda x: straightforward_forward(model, x)):
        model.zero_grad()
        loss = F.cross_entropy(forward(image), label)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, ga), (loss_b, gb) = grads
    assert abs(loss_a - loss_b) < 1e-10, (loss_a, loss_b)
    return max((a - b).abs().max().item() for a, b in zip(ga, gb, strict=True))


def run_stage(name: str, args: list[str]) -> tuple[float, str]:
    """``gac-deploy ARGS`` in a child process, as a user runs it: (seconds, its stdout).
    Prints its wall time and peak memory (the largest resident set of the command's
    process and of every process it started, read with ``wait4``); exits naming the
    stage and the end of its stderr if it fails."""
    command = [sys.executable, "-m", "gac_deploy"]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([*command, *args], stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        sys.exit(f"{name} failed ({code}): {stderr.strip()[-2000:]}")
    print(f"{name}: {seconds:.1f} s, peak memory {usage.ru_maxrss / 1024:.0f} MB")
    return seconds, stdout


@contextlib.contextmanager
def work_directory(path: str | None):
    """Where a bench keeps its files: ``path`` (created if missing, kept), or a temporary
    directory removed afterwards when ``path`` is None."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(path or tmp)
        work.mkdir(parents=True, exist_ok=True)
        yield work

