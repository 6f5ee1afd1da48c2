"""Import of the authors' released GAC checkpoints (e.g. ``CIFAR100_T=6.pth``).

Their state dicts may hold either of two alias sets of key names, or both, and
a ``module.`` prefix when saved from DataParallel. Keys are first brought to
one canonical form, then mapped onto this package's module names:

    conv1.weight, bn1.bn.*                         -> encoder.conv.weight, encoder.bn.*
    encoding.TA.sharedMLP.{0,2}.weight [o,i,1,1,1] -> encoder.ta.mlp.{0,2}.weight [o,i]
    encoding.SCA.sharedMLP.{0,2}.weight            -> encoder.sca.conv{1,2}.weight
    layerS.I.conv{1,2}.weight, layerS.I.bn{1,2}.bn.* -> blocks.K.conv{1,2}.{conv.weight,bn.*}
    layerS.0.downsample.layer.module.weight, .bn.bn.* -> blocks.K.downsample.{conv.weight,bn.*}
    fc1.{weight,bias}                              -> fc.{weight,bias}

(aliases: ``X.seqbn.module.*`` = ``X.bn.*``; ``convJ_s.layer.module.weight`` =
``convJ.weight``; ``convJ_s.bn.*`` = ``bnJ.*``; ``fc1_s.layer.module.*`` = ``fc1.*``.)
The model is built as the authors built it: membrane shortcuts (their
downsample reads the real-valued stream) and, for their CIFAR code, threshold
1.0, tau 0.5, strict threshold and the triangle surrogate.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from gac_deploy.config import AUTHORS_CIFAR_LIF, LIFConfig, ModelConfig
from gac_deploy.errors import UserError
from gac_deploy.models.msresnet import GACMSResNet
from gac_deploy.models.registry import build_model, default_config

ARCHS = ("msresnet18-cifar", "msresnet18-imagenet", "msresnet34-imagenet")

_ALIASES = [
    (re.compile(r"\.seqbn\.module\."), ".bn."),
    (re.compile(r"(^|\.)conv(\d)_s\.layer\.module\.weight$"), r"\1conv\2.weight"),
    (re.compile(r"(^|\.)conv(\d)_s\.bn\."), r"\1bn\2."),
    (re.compile(r"^fc1_s\.layer\.module\."), "fc1."),
]


def official_config(arch: str, num_classes: int, time_steps: int) -> ModelConfig:
    """The configuration the authors' code builds for ``arch``."""
    if arch not in ARCHS:
        raise UserError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    lif = AUTHORS_CIFAR_LIF if arch.endswith("cifar") else LIFConfig()
    return replace(
        default_config(arch),
        num_classes=num_classes,
        time_steps=time_steps,
        shortcut="membrane",
        lif=lif,
    )


def canonical_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One key per tensor: strip ``module.``, resolve aliases; aliases must agree."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        name = key.removeprefix("module.")
        for pattern, repl in _ALIASES:
            name = pattern.sub(repl, name)
        if name in out and not torch.equal(out[name], value):
            raise UserError(f"checkpoint keys {key!r} and its alias {name!r} hold different values")
        out[name] = value
    return out


def _official_names(model: GACMSResNet) -> dict[str, str]:
    """Our parameter/buffer name -> the authors' canonical name."""
    names = {
        "encoder.conv.weight": "conv1.weight",
        "fc.weight": "fc1.weight",
        "fc.bias": "fc1.bias",
    }
    bn_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for k in bn_keys:
        names[f"encoder.bn.{k}"] = f"bn1.bn.{k}"
    if hasattr(model.encoder, "ta"):
        for j in (0, 2):
            names[f"encoder.ta.mlp.{j}.weight"] = f"encoding.TA.sharedMLP.{j}.weight"
    if hasattr(model.encoder, "sca"):
        for j, ours in ((0, "conv1"), (2, "conv2")):
            names[f"encoder.sca.{ours}.weight"] = f"encoding.SCA.sharedMLP.{j}.weight"
    k = 0
    for s, stage in enumerate(model.config.stages, start=1):
        for i in range(stage.blocks):
            theirs = f"layer{s}.{i}"
            for j in (1, 2):
                names[f"blocks.{k}.conv{j}.conv.weight"] = f"{theirs}.conv{j}.weight"
                for key in bn_keys:
                    names[f"blocks.{k}.conv{j}.bn.{key}"] = f"{theirs}.bn{j}.bn.{key}"
            if model.blocks[k].downsample is not None:
                names[f"blocks.{k}.downsample.conv.weight"] = (
                    f"{theirs}.downsample.layer.module.weight"
                )
                for key in bn_keys:
                    names[f"blocks.{k}.downsample.bn.{key}"] = f"{theirs}.downsample.bn.bn.{key}"
            k += 1
    return names


def sizes_in(state: dict[str, torch.Tensor]) -> tuple[int | None, int | None]:
    """(classes, T) as the authors' state dict shows them: the classifier ``fc1.weight``
    [classes, features] and the temporal attention's first layer
    ``encoding.TA.sharedMLP.0.weight`` [T // 2, T, 1, 1, 1]; None where the key is absent
    (T cannot be read from a network without GAC)."""
    canonical = canonical_state_dict(state)
    classifier = canonical.get("fc1.weight")
    attention = canonical.get("encoding.TA.sharedMLP.0.weight")
    classes = int(classifier.shape[0]) if classifier is not None and classifier.dim() == 2 else None
    steps = int(attention.shape[1]) if attention is not None and attention.dim() >= 2 else None
    return classes, steps


def import_official(state: dict[str, torch.Tensor], config: ModelConfig) -> GACMSResNet:
    """Build ``config`` and load the authors' tensors into it (eval mode).

    Raises UserError listing every missing or misshapen key.
    """
    model = build_model(config)
    canonical = canonical_state_dict(state)
    ours = model.state_dict()
    loaded, missing, misshapen = {}, [], []
    for name, theirs in _official_names(model).items():
        if theirs not in canonical:
            if not name.endswith("num_batches_tracked"):
                missing.append(theirs)
            continue
        tensor = canonical[theirs]
        if tensor.numel() == ours[name].numel() and tensor.dim() > ours[name].dim():
            tensor = tensor.reshape(ours[name].shape)  # TA's Conv3d 1x1x1 -> Linear
        if tensor.shape != ours[name].shape:
            misshapen.append(f"{theirs} {tuple(tensor.shape)} (expected {tuple(ours[name].shape)})")
            continue
        loaded[name] = tensor
    if missing or misshapen:
        problems = []
        if missing:
            problems.append(
                f"missing {len(missing)}: {', '.join(missing[:8])}"
                + (" ..." if len(missing) > 8 else "")
            )
        if misshapen:
            problems.append(f"misshapen: {', '.join(misshapen[:8])}")
        raise UserError(
            f"checkpoint does not fit {config.arch} with {config.num_classes} classes and "
            f"T={config.time_steps} ({'; '.join(problems)}); check --arch, --num-classes and -T"
        )
    model.load_state_dict({**ours, **loaded})
    return model.eval()
