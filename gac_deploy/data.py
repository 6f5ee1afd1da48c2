"""Datasets: scikit-learn's digits (embedded default), CIFAR-10/100 and ImageNet from a
user's local copy in their standard on-disk formats. Nothing is downloaded. Each is
registered in :mod:`gac_deploy.registries.datasets`, which :func:`load_dataset` reads.

Every dataset yields images as float32 [N, C, H, W], scaled to [0, 1] and normalised
per channel with ``DataSpec.mean`` / ``std``, and integer labels [N].

* digits: 1797 real 8x8 images, fixed seeded stratified split.
* cifar10 / cifar100: the official python layout (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``; ``train``, ``test``, ``meta`` with fine labels), read by
  :mod:`gac_deploy.cifar_files` without running code. Training augmentation:
  4-pixel zero padding + random 32x32 crop + horizontal flip (:mod:`gac_deploy.augment`).
* imagenet: ImageFolder layout (``train/<class>/*.JPEG``, ``val/<class>/*.JPEG``),
  decoded with Pillow; training: random resized crop to 224 (scale 0.08-1, ratio
  3/4-4/3) + flip; evaluation: resize the short side to 256, centre crop 224.

Why one module of about 420 lines: the split types (DataSpec, the datasets, Split, the
test split's hash) and the built-in loaders that make them are imported as one module by
the package, its tests and benches; a loader of another dataset belongs in a module of
its own (docs/extending.md), built on :func:`in_memory_split`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gac_deploy.augment import generators, pad_crop_flip, random_resized_crop, resize_centre_crop
from gac_deploy.cifar_files import check_cifar_arrays, read_cifar_batch
from gac_deploy.errors import UserError
from gac_deploy.registries import resolve
from gac_deploy.registries.datasets import DATASETS, DataRequest, Normalization

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STANDARD_NORMALIZATION: dict[str, Normalization] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}
"""Per-channel (mean, std) of pixels in [0, 1] that models of these datasets are trained
with unless told otherwise: the constants of the authors' ``data_loaders.py`` (the
ImageNet pair is the usual torchvision one), so that their checkpoints and ours see the
same inputs. Datasets not listed (digits, synthetic) are normalised with their training
split's own mean and std."""


@dataclass(frozen=True)
class DataSpec:
    """Which data, which split, and the normalisation the model was trained with.

    The normalisation (``mean``, ``std``: per channel, of pixels in [0, 1]) belongs to the
    model: a split rebuilt for it (:func:`load_split`) is normalised with these numbers,
    never with statistics recomputed from the copy at hand. ``test_hash`` identifies the
    test split itself (:func:`test_split_hash`), so a moved or re-extracted copy is
    recognised and a different one is refused; None where it was not recorded."""

    dataset: str = "digits"
    seed: int = 0
    test_fraction: float = 0.2
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    data_dir: str | None = None
    test_hash: str | None = None

    def __post_init__(self) -> None:  # older checkpoints stored scalars
        for key in ("mean", "std"):
            value = getattr(self, key)
            if not isinstance(value, tuple):
                value = tuple(value) if isinstance(value, list) else (float(value),)
                object.__setattr__(self, key, value)

    @property
    def layout(self) -> str:
        """The model input as this data gives it: [N, C, H, W] float32 pixels, scaled to
        [0, 1] and normalised per channel with ``mean`` / ``std``."""
        scaling = DATASETS.get(self.dataset).pixel_scaling
        return f"NCHW, float32, normalised: ({scaling} - mean) / std"


class ArrayDataset:
    """Images held in memory as uint8 or float in [0, 1], [N, C, H, W]."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, spec: DataSpec, augment: str = "none"
    ) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std).view(1, -1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def batch(
        self, indices: torch.Tensor, train: bool = False, seeds: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``indices`` [N, C, H, W] and their labels [N]. ``train``: augmented, image i
        with a generator seeded by ``seeds[i]`` (unseeded when None)."""
        x = self.images[indices]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if train and self.augment == "cifar":
            augmented = zip(x, generators(seeds, len(x)), strict=True)
            x = torch.stack([pad_crop_flip(image, 4, g) for image, g in augmented])
        return (x - self.mean) / self.std, self.labels[indices]


class FolderDataset:
    """ImageFolder layout decoded with Pillow, transformed per image."""

    def __init__(self, files: list[Path], labels: list[int], spec: DataSpec, size: int = 224):
        self.files, self.labels = files, torch.tensor(labels, dtype=torch.int64)
        self.mean = torch.tensor(spec.mean).view(-1, 1, 1)
        self.std = torch.tensor(spec.std).view(-1, 1, 1)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path, train: bool, generator) -> torch.Tensor:
        """One image, decoded and transformed. A file that does not decode (truncated,
        empty, not an image, or a decompression bomb past Pillow's pixel limit) is
        refused, naming it: skipping it would change which image each planned position
        holds, and with it resumed and multi-process runs."""
        from PIL import Image

        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if train:
                    img = random_resized_crop(img, self.size, generator)
                    if torch.rand(1, generator=generator).item() < 0.5:
                        img = img.transpose(Image.FLIP_LEFT_RIGHT)
                else:
                    img = resize_centre_crop(img, int(self.size * 256 / 224), self.size)
                array = np.asarray(img, dtype=np.float32) / 255.0
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(
                f"{path} cannot be used as an image ({reason[:120]}); remove or replace it"
            ) from None
        return (torch.from_numpy(array).permute(2, 0, 1) - self.mean) / self.std

    def batch(
        self, indices: torch.Tensor, train: bool = False, seeds: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`ArrayDataset.batch`."""
        images = [
            self._load(self.files[int(i)], train, g)
            for i, g in zip(indices, generators(seeds, len(indices)), strict=True)
        ]
        return torch.stack(images), self.labels[indices]


@dataclass
class Split:
    train: ArrayDataset | FolderDataset
    test: ArrayDataset | FolderDataset
    spec: DataSpec
    num_classes: int
    in_channels: int = field(default=1)
    image_size: int = field(default=8)

    def test_images(self, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` test images (all if None) and labels, evaluation transform."""
        count = len(self.test) if count is None else min(count, len(self.test))
        return self.test_range(range(count))

    def test_range(self, indices: range) -> tuple[torch.Tensor, torch.Tensor]:
        """Test images [n, C, H, W] and labels [n] at ``indices`` (a contiguous range),
        evaluation transform."""
        return self.test.batch(torch.arange(indices.start, indices.stop))


def test_split_hash(images: np.ndarray | Sequence[Path], labels: np.ndarray | Sequence[int]) -> str:
    """sha256 identifying a test split: its stored pixels (dtype, shape and bytes) and
    labels, or for an image folder each file's name within its class folder, its size and
    its label (the files are not read)."""
    digest = hashlib.sha256()
    if isinstance(images, np.ndarray):
        digest.update(f"{images.dtype}{images.shape}".encode())
        digest.update(np.ascontiguousarray(images).tobytes())
    else:
        for path in images:
            digest.update(f"{path.parent.name}/{path.name}\t{path.stat().st_size}\n".encode())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _spec(
    dataset: str,
    seed: int,
    test_fraction: float,
    normalization: Normalization,
    data_dir: str | None,
    test_hash: str,
    channels: int,
) -> DataSpec:
    mean, std = (tuple(float(v) for v in values) for values in normalization)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise UserError(
                f"{dataset} images have {channels} channel(s) but the normalisation gives "
                f"{len(values)} {name} value(s); give one per channel (or one for all)"
            )
    return DataSpec(dataset, seed, test_fraction, mean, std, data_dir, test_hash)


def load_digits_split(
    seed: int = 0, test_fraction: float = 0.2, normalization: Normalization | None = None
) -> Split:
    """The 1797 digits, split 80/20 stratified by class with a fixed seed; normalised with
    ``normalization`` or, by default, the training split's mean and std."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    request = DataRequest("digits", None, seed, test_fraction, normalization)
    return in_memory_split(request, (x_tr, y_tr), (x_te, y_te), 10)


def in_memory_split(
    request: DataRequest,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
) -> Split:
    """A split of square images held in memory, for a registered loader: ``train`` and
    ``test`` are (images [N, C, H, H], labels [N]), images float in [0, 1] or uint8 (/ 255).
    Normalised with ``request.normalization`` or, by default, the training images' own
    mean and std; the test split's hash recorded."""
    (x_tr, y_tr), (x_te, y_te) = train, test
    pixels = x_tr.astype(np.float32) / 255.0 if x_tr.dtype == np.uint8 else x_tr
    normalization = request.normalization or ((pixels.mean(),), (pixels.std(),))
    channels, size = int(x_tr.shape[1]), int(x_tr.shape[2])
    spec = _spec(
        request.dataset,
        request.seed,
        request.test_fraction,
        normalization,
        request.data_dir,
        test_split_hash(x_te, y_te),
        channels,
    )
    train_set, test_set = ArrayDataset(x_tr, y_tr, spec), ArrayDataset(x_te, y_te, spec)
    return Split(train_set, test_set, spec, num_classes, channels, size)


def load_cifar_split(
    data_dir: str | Path,
    classes: int,
    seed: int = 0,
    normalization: Normalization | None = None,
) -> Split:
    """CIFAR-10/100 from the official python batches; normalised with ``normalization`` or
    the dataset's :data:`STANDARD_NORMALIZATION`."""
    root = Path(data_dir)
    if classes == 10:
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta, key = [root / "test_batch"], root / "batches.meta", "labels"
    else:
        train_files, test_files, meta, key = (
            [root / "train"],
            [root / "test"],
            root / "meta",
            "fine_labels",
        )
    missing = [p.name for p in [*train_files, *test_files, meta] if not p.is_file()]
    if missing:
        raise UserError(
            f"{root} is not a CIFAR-{classes} python directory: missing "
            f"{', '.join(missing)}; point --data-dir at the extracted "
            f"{'cifar-10-batches-py' if classes == 10 else 'cifar-100-python'} folder"
        )

    def read(files):
        images, labels = [], []
        for path in files:
            batch = read_cifar_batch(path)
            if "data" not in batch or key not in batch:
                raise UserError(f"{path} has no 'data'/'{key}' entries; is it CIFAR-{classes}?")
            x, y = check_cifar_arrays(path, batch["data"], batch[key], classes)
            images.append(x)
            labels.append(y)
        return np.concatenate(images), np.concatenate(labels)

    x_tr, y_tr = read(train_files)
    x_te, y_te = read(test_files)
    name = f"cifar{classes}"
    normalization = normalization or STANDARD_NORMALIZATION[name]
    test_hash = test_split_hash(x_te, y_te)
    spec = _spec(name, seed, 0.0, normalization, str(root), test_hash, 3)
    return Split(
        ArrayDataset(x_tr, y_tr, spec, "cifar"),
        ArrayDataset(x_te, y_te, spec),
        spec,
        classes,
        3,
        32,
    )


IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def load_imagenet_split(
    data_dir: str | Path, seed: int = 0, normalization: Normalization | None = None
) -> Split:
    """An ImageFolder tree; normalised with ``normalization`` or ImageNet's standard."""
    root = Path(data_dir)
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise UserError(
                f"{root} is not an ImageFolder directory: missing {part}/ "
                f"(expected {part}/<class>/*.JPEG); point --data-dir at it"
            )
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"{root / 'train'} has no class folders; expected train/<class>/*.JPEG")
    index = {c: i for i, c in enumerate(classes)}

    def scan(part):
        files, labels = [], []
        for cls in sorted(p for p in (root / part).iterdir() if p.is_dir()):
            if cls.name not in index:
                raise UserError(
                    f"{root / part / cls.name} is a class not in train/; the "
                    "train and val folders must have the same classes"
                )
            for f in sorted(cls.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(f)
                    labels.append(index[cls.name])
        if not files:
            raise UserError(f"{root / part} holds no images (.JPEG, .jpg, .png)")
        return files, labels

    train, test = scan("train"), scan("val")
    normalization = normalization or STANDARD_NORMALIZATION["imagenet"]
    spec = _spec("imagenet", seed, 0.0, normalization, str(root), test_split_hash(*test), 3)
    return Split(
        FolderDataset(*train, spec), FolderDataset(*test, spec), spec, len(classes), 3, 224
    )


def load_synthetic_split(
    seed: int = 0,
    image_size: int = 8,
    classes: int = 4,
    per_class: int = 40,
    normalization: Normalization | None = None,
) -> Split:
    """A seeded, learnable toy set for tests: each class is a bright square in its own place."""
    gen = np.random.default_rng(seed)
    n = classes * per_class
    labels = np.repeat(np.arange(classes), per_class)
    images = gen.uniform(0, 0.3, size=(n, 1, image_size, image_size)).astype(np.float32)
    half = image_size // 2
    for i, label in enumerate(labels):
        r, c = divmod(int(label) % 4, 2)
        images[i, 0, r * half : (r + 1) * half, c * half : (c + 1) * half] += 0.7
    order = gen.permutation(n)
    images, labels = images[order], labels[order]
    cut = n * 3 // 4
    request = DataRequest("synthetic", None, seed, 0.25, normalization)
    return in_memory_split(
        request, (images[:cut], labels[:cut]), (images[cut:], labels[cut:]), classes
    )


def load_digits(request: DataRequest) -> Split:
    """The registered ``digits`` loader."""
    return load_digits_split(request.seed, request.test_fraction, request.normalization)


def load_cifar10(request: DataRequest) -> Split:
    """The registered ``cifar10`` loader."""
    return load_cifar_split(request.root(), 10, request.seed, request.normalization)


def load_cifar100(request: DataRequest) -> Split:
    """The registered ``cifar100`` loader."""
    return load_cifar_split(request.root(), 100, request.seed, request.normalization)


def load_imagenet(request: DataRequest) -> Split:
    """The registered ``imagenet`` loader."""
    return load_imagenet_split(request.root(), request.seed, request.normalization)


def load_synthetic(request: DataRequest) -> Split:
    """The registered ``synthetic`` loader (its own fixed 3:1 split)."""
    return load_synthetic_split(request.seed, normalization=request.normalization)


def load_dataset(
    name: str,
    data_dir: str | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    normalization: Normalization | None = None,
) -> Split:
    """A registered dataset's split, normalised with ``normalization`` (per-channel mean
    and std of pixels in [0, 1]) or the dataset's default (see
    :data:`STANDARD_NORMALIZATION`)."""
    loader = resolve(DATASETS.get(name).loader)
    return loader(DataRequest(name, data_dir, seed, test_fraction, normalization))


def load_split(spec: DataSpec, data_dir: str | None = None) -> Split:
    """Rebuild the split a model was trained on: the same seed and split, normalised with
    the model's own ``spec.mean`` / ``spec.std``. Where ``spec.test_hash`` is recorded, the
    data found must hold that same test split (wherever it lies now)."""
    where = data_dir or spec.data_dir
    split = load_dataset(spec.dataset, where, spec.seed, spec.test_fraction, (spec.mean, spec.std))
    if spec.test_hash is not None and split.spec.test_hash != spec.test_hash:
        source = f"the {spec.dataset} data in {where}" if where else f"this {spec.dataset} data"
        raise UserError(
            f"{source} is not the test split the model was checked on (its test images or "
            "labels differ); point --data-dir at that copy of the data"
        )
    return split
