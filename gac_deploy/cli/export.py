"""``gac-deploy export``: a model.pt as a Loihi 2 bundle (encoder.onnx, body.net,
manifest.json), or with ``--target nir`` as a NIR bundle (encoder.onnx, body.nir,
manifest.json)."""

from __future__ import annotations

import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export model.pt as a Loihi 2 (or NIR) bundle",
        description="Write encoder.onnx (host), body.net (NetX HDF5) and "
        "manifest.json into a bundle directory; --target nir writes the float body as "
        "body.nir (NIR graph) instead of body.net.",
    )
    p.add_argument("checkpoint", help="model.pt written by 'gac-deploy train'")
    p.add_argument("--target", default="loihi2", help="loihi2 (default) or nir")
    p.add_argument("--out", help="bundle directory (default: 'bundle' beside the checkpoint)")
    p.add_argument("--chips", type=int, default=1, help="Loihi 2 chips available (default 1)")


def run(args) -> dict:
    from gac_deploy.export.targets import export_bundle

    out = args.out or str(Path(args.checkpoint).parent / "bundle")
    started = time.perf_counter()
    bundle = export_bundle(args.checkpoint, out, target=args.target, chips=args.chips)
    if bundle.target == "nir":
        return report_nir(bundle, out, started)
    return report_loihi2(bundle, out, started)


def report_nir(bundle, out: str, started: float) -> dict:
    from gac_deploy.export.nir_graph import DT

    m = bundle.manifest
    lif = sum(1 for p in bundle.graph.populations if p.role == "lif")
    print(
        f"NIR graph: {lif} LIF populations, {len(bundle.graph.edges)} synapse layers, "
        f"read-out of {bundle.graph.readout.size} classes (sum the Output over "
        f"T={m['time_steps']} steps); readers step with dt = {DT:g} s"
    )
    print(f"exported in {time.perf_counter() - started:.1f} s")
    print(f"wrote {out}/encoder.onnx, {out}/body.nir, {out}/manifest.json")
    return {"bundle": out}


def report_loihi2(bundle, out: str, started: float) -> dict:
    """Print a Loihi 2 bundle's table, resources and reference accuracy."""
    from gac_deploy.table import format_table

    m = bundle.manifest
    rows = [
        [
            q["population"],
            q["scale_exp"],
            q["clipped_weights"],
            q["clipped_bias"],
            next(p["latency"] for p in m["body"]["populations"] if p["name"] == q["population"]),
        ]
        for q in m["quantization"]
    ]
    print(format_table(["population", "scale exp", "clipped w", "clipped b", "latency"], rows))
    res = m["resources"]
    print(
        f"Loihi 2 estimate: {res['neurons']:,} neurons, {res['synapses']:,} synapses "
        f"(unrolled); {res['cores']} cores on {res['chips_needed']} of {res['chips']} chip(s) "
        f"with conv kernels stored once per core ({res['cores_unrolled']} cores, "
        f"{res['chips_needed_unrolled']} chip(s) if every synapse were stored)"
    )
    exceeding = res["state_bound_exceeds_24_bits"]
    if exceeding:
        worst = max(exceeding, key=lambda b: max(b["current"], b["voltage"]))
        print(
            f"note: for the worst input their weights allow, {len(exceeding)} population(s) "
            f"could leave Loihi's 24-bit state (largest bound: {worst['population']}, "
            f"{max(worst['current'], worst['voltage']):.3g}); the chip wraps the current and "
            "saturates the voltage there, as Lava and the emulator do, and 'simulate' counts "
            "every neuron-step where it happens"
        )
    print(
        f"payload {m['body']['payload_bits']} bits, latency {m['body']['latency_steps']} steps; "
        f"exported in {time.perf_counter() - started:.1f} s"
    )
    print(f"wrote {out}/encoder.onnx, {out}/body.net, {out}/manifest.json")
    from gac_deploy.chip.simulate import reference_accuracy

    if bundle.data_spec.dataset != "digits":
        print(f"({bundle.data_spec.dataset} is not available here: accuracy not measured)")
        return {"bundle": out, "reference_accuracy": None}
    accuracy, count = reference_accuracy(bundle)
    float_acc = m["float_test_accuracy"]
    print(
        f"test accuracy on all {count} test images: float "
        f"{'-' if float_acc is None else f'{float_acc:.4f}'}, quantised reference {accuracy:.4f}"
    )
    return {"bundle": out, "reference_accuracy": accuracy}
