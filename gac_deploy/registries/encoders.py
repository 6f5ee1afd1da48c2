"""The encoders: the host stage that turns a static image into T steps of the body's
input. ``ModelConfig.encoder`` names one; :func:`gac_deploy.models.encoder.encoder_class`
builds it through this registry; ``train --encoder`` and ``energy --encoder`` list it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gac_deploy.registries import Registry


@dataclass(frozen=True)
class EncoderEntry:
    """An encoder. ``implementation``: ``"module:Class"`` or the class, a subclass of
    :class:`gac_deploy.models.encoder.StemEncoder` (``signed_output`` and ``host_ops``
    tell export and the energy report what it sends and costs). ``help``: one line."""

    implementation: str | type
    help: str


ENCODERS: Registry[EncoderEntry] = Registry("encoder", setting="encoder")
DEFAULT_ENCODER = "gac"

ENCODERS.register(
    "gac",
    EncoderEntry(
        "gac_deploy.models.encoder:GACEncoder",
        "gated attention coding (Eq. 5): the stem's spikes, gated",
    ),
)
ENCODERS.register(
    "lif",
    EncoderEntry("gac_deploy.models.encoder:LIFEncoder", "the stem's LIF spikes, no gate"),
)
ENCODERS.register(
    "direct",
    EncoderEntry("gac_deploy.models.encoder:DirectEncoder", "the stem's real output at every step"),
)
ENCODERS.register(
    "rate",
    EncoderEntry(
        "gac_deploy.models.encoder:RateEncoder",
        "Bernoulli spikes of the pixels through the stem at every step",
    ),
)
