"""How many payload bits: float-vs-quantised agreement for each b, and the rule's b.

    python bench/payload_bits.py [--width 8] [--images 48]

msresnet18-cifar as the authors build it (membrane shortcuts, T=6) at channels / width,
random weights with BatchNorm statistics set for moderate firing
(``gac_deploy.testing.calibrate_rates_by_role``), on random 32x32 images. For b = 1..8 (the payload
fixed, every other exponent as export chooses it): the predicted RMS error that rounding
adds to the graded input's current (``payload_error``, worst population, in
thresholds), the quantised reference's spike agreement with the float graph (mean and
worst population) and how often their predictions agree. The b the data-free rule picks
(export without data) is marked; with data, export keeps the b of the best mean
agreement on training images (``gac_deploy.chip.calibration``).
Random weights: this measures the rounding, not a trained network's accuracy.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from gac_deploy.body.quantize import (
    MAX_PAYLOAD_BITS,
    choose_format,
    graded_input_consumers,
    payload_error,
    quantize_graph,
    quantize_payload,
)
from gac_deploy.chip.reference import run_float_graph, run_quantized_graph
from gac_deploy.models import build_model
from gac_deploy.models.official import official_config
from gac_deploy.testing import calibrate_rates_by_role


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8, help="channels / WIDTH")
    parser.add_argument("--images", type=int, default=48)
    args = parser.parse_args()
    config = official_config("msresnet18-cifar", 10, 6)
    stages = tuple(replace(s, channels=s.channels // args.width) for s in config.stages)
    config = replace(config, stem_channels=config.stem_channels // args.width, stages=stages)
    torch.manual_seed(0)
    model = build_model(config)
    calibrate_rates_by_role(model, torch.randn(64, 3, 32, 32))
    with torch.no_grad():
        encoded = model.encoder(torch.randn(args.images, 3, 32, 32))
    graph = model.export_graph()
    float_run = run_float_graph(graph, encoded.double())
    rates = [float(s.mean()) for s in float_run.spikes.values()]
    chosen = choose_format(graph).payload_bits
    consumers = graded_input_consumers(graph)
    print(
        f"msresnet18-cifar / {args.width} (membrane shortcuts, T={config.time_steps}, random "
        f"weights, float firing {min(rates):.1%}-{max(rates):.1%}), {args.images} images; "
        f"{len(consumers)} populations read the graded input"
    )
    print("b  predicted error  spike agreement (mean, worst)  prediction agreement")
    for bits in range(1, MAX_PAYLOAD_BITS + 1):
        try:
            spec = choose_format(graph, payload_bits=bits)
        except ValueError:
            break
        error = payload_error(graph, spec.scale_exp, bits)
        quantized, _ = quantize_graph(graph, spec)
        run = run_quantized_graph(quantized, quantize_payload(encoded, bits).double())
        agreement = [
            float((run.spikes[name] == spikes.to(run.spikes[name].dtype)).double().mean())
            for name, spikes in float_run.spikes.items()
        ]
        same = float((run.predictions == float_run.predictions).double().mean())
        mark = "  <- the data-free rule's choice" if bits == chosen else ""
        print(
            f"{bits}  {error:15.3f}  {sum(agreement) / len(agreement):.4f}, "
            f"{min(agreement):.4f}{' ' * 16}{same:.3f}{mark}"
        )


if __name__ == "__main__":
    main()
