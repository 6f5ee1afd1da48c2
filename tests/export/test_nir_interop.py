"""NIR with a reader and a writer nobody here wrote (snnTorch, the pinned ``interop`` extra):

* snnTorch's ``import_from_nir`` runs our body.nir on the digits test images and
  reproduces the float body (the figures it prints are in docs/nir.md);
* a network built in snnTorch and written with its ``export_to_nir`` comes to Loihi 2
  through ``import-nir``;
* digits model -> --target nir -> import-nir -> the emulator equals the direct Loihi 2
  export;
* bad .nir files and sources: one line, exit 2, nothing written.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir

from gac_deploy.body.quantize import choose_format
from gac_deploy.chip.emulator import emulate
from gac_deploy.chip.reference import run_float_graph
from gac_deploy.chip.simulate import simulate_bundle
from gac_deploy.data import load_split
from gac_deploy.export.loading import load_bundle, load_nir_bundle
from gac_deploy.export.nir_graph import read_nir
from tests.cli.test_cli import assert_user_error, cli
from tests.export.test_nir_graph import hostile_files


@pytest.fixture(scope="module")
def nir_bundle(trained_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("nir") / "nir-bundle"
    result = cli("export", str(trained_dir / "model.pt"), "--target", "nir", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return load_nir_bundle(out)


@pytest.fixture(scope="module")
def digits_test(nir_bundle):
    """All digits test images [N, 1, 8, 8] and the encoder's output O [T, N, C, H, W]."""
    images, labels = load_split(nir_bundle.data_spec).test_images()
    encoded, _ = nir_bundle.encode(images.numpy())
    return images.numpy(), torch.from_numpy(encoded)


def run_snntorch(net: torch.nn.Module, encoded: torch.Tensor):
    """Run a snnTorch network step by step on O [T, N, ...] (float32, as snnTorch computes).
    Returns each Leaky module's spikes [T, N, ...] by module name and the output [T, N, ...]."""
    spikes: dict[str, list[torch.Tensor]] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: spikes.setdefault(name, []).append(out.clone())
        )
        for name, module in net.named_modules()
        if isinstance(module, snntorch.Leaky)
    ]
    snn_utils.reset(net)  # hidden states to zero: one run starts from rest
    outputs, state = [], None
    with torch.no_grad():
        for step in encoded.float():
            if isinstance(net, torch.fx.GraphModule):  # import_from_nir's: (output, state)
                out, state = net(step, state)
            else:
                out = net(step)
            outputs.append(out)
    for hook in hooks:
        hook.remove()
    return {k: torch.stack(v) for k, v in spikes.items()}, torch.stack(outputs)


def test_snntorch_reproduces_the_float_body(nir_bundle, digits_test, capsys):
    _, encoded = digits_test
    net = import_from_nir(nir.read(nir_bundle.path / "body.nir"))
    theirs, output = run_snntorch(net, encoded)
    ours = run_float_graph(nir_bundle.graph, encoded.double())
    lines = [
        f"snnTorch {snntorch.__version__} vs our float body, {encoded.shape[1]} digits "
        f"test images, T={encoded.shape[0]}:"
    ]
    for name, spikes in ours.spikes.items():
        other = theirs[name.replace(".", "_")].double()
        assert other.shape == spikes.shape, name
        agree = float((other == spikes).double().mean())
        lines.append(
            f"  {name:12s} spikes equal in {agree:.4%} of {spikes.numel():,} neuron-steps "
            f"(firing rate {float(spikes.mean()):.3f})"
        )
        assert agree >= 0.999, name
    # the read-out: NIR's Output summed over the T steps is the class score
    scores = output.double().sum(dim=0).flatten(1)
    same_class = float((scores.argmax(1) == ours.predictions).double().mean())
    worst = float((scores - ours.scores).abs().max())
    lines.append(
        f"  predicted class equal for {same_class:.2%} of images; |score diff| <= {worst:.1e}"
    )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert same_class >= 0.99


def snntorch_chain(seed: int = 0) -> torch.nn.Module:
    """A small network built in snnTorch reading the digits encoder output (16, 8, 8)."""
    torch.manual_seed(seed)

    def leaky(shape: tuple[int, ...], beta: float) -> snntorch.Leaky:
        # per-neuron parameters, so that snnTorch's export gives NIR shapes that type-check
        return snntorch.Leaky(
            beta=torch.full(shape, beta),
            threshold=torch.full(shape, 0.6),
            init_hidden=True,
            reset_mechanism="zero",
            reset_delay=False,
        )

    net = torch.nn.Sequential(
        torch.nn.Conv2d(16, 8, 3, padding=1),
        leaky((8, 8, 8), 0.5),
        torch.nn.Conv2d(8, 12, 3, stride=2, padding=1),
        leaky((12, 4, 4), 0.75),
        torch.nn.Flatten(),
        torch.nn.Linear(12 * 4 * 4, 10),
        leaky((10,), 0.25),
    )
    with torch.no_grad():
        for module in net:
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                module.weight.mul_(3.0)
    return net.eval()


def test_a_snntorch_network_comes_to_loihi2(nir_bundle, digits_test, tmp_path):
    net = snntorch_chain()
    graph = export_to_nir(net, torch.zeros(1, 16, 8, 8), ignore_dims=[0])
    file = tmp_path / "snntorch.nir"
    nir.write(file, graph)
    # our reading of their file is their network: same spikes on the digits encoder output
    _, encoded = digits_test
    body = read_nir(file, nir_bundle.graph.time_steps)
    theirs, _ = run_snntorch(net, encoded)
    ours = run_float_graph(body, encoded.double())
    for (name, spikes), module in zip(ours.spikes.items(), ("1", "3", "6"), strict=True):
        assert 0 < float(spikes.mean()) < 1, name
        agree = float((theirs[module].double() == spikes).double().mean())
        assert agree >= 0.999, (name, agree)
    out = tmp_path / "loihi2"
    result = cli("import-nir", str(file), "--encoder-from", str(nir_bundle.path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    bundle = load_bundle(out)
    # quantised in the format chosen for this body, payload included: the copied encoder
    # now sends that payload (its O is unchanged), so the input weights keep their precision
    assert bundle.graph.payload_bits == choose_format(body).payload_bits
    assert bundle.encoder_payload_bits == bundle.graph.payload_bits
    report = simulate_bundle(bundle, samples=64, progress=False)
    assert report.spike_exact
    for check in report.populations:  # the chip's rates are snnTorch's (float) rates
        float_rate = float(ours.spikes[check.population][:, :64].mean())
        assert abs(check.firing_rate - float_rate) < 0.03, (check.population, float_rate)


def test_round_trip_equals_the_direct_loihi2_export(nir_bundle, bundle_dir, digits_test, tmp_path):
    out = tmp_path / "imported"
    result = cli("import-nir", str(nir_bundle.path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    imported, direct = load_bundle(out), load_bundle(bundle_dir)
    images, _ = digits_test
    runs = []
    for bundle in (imported, direct):
        _, payload = bundle.encode(images)
        runs.append(emulate(bundle.graph, torch.from_numpy(np.rint(payload))))
    assert runs[0].spikes.keys() == runs[1].spikes.keys()
    for name, spikes in runs[0].spikes.items():
        assert torch.equal(spikes, runs[1].spikes[name]), name
    assert torch.equal(runs[0].readout, runs[1].readout)
    assert (out / "body.net").read_bytes() == (bundle_dir / "body.net").read_bytes()


def test_bad_nir_sources_are_one_line_errors(nir_bundle, tmp_path):
    encoder = str(nir_bundle.path)
    cases = [(path, words) for path, words in hostile_files(tmp_path, nir_bundle.path / "body.nir")]
    recurrent = tmp_path / "recurrent.nir"
    graph = nir.read(nir_bundle.path / "body.nir")
    graph.edges.append(("head.lif", "block1.conv1.to.block1.lif2"))
    nir.write(recurrent, graph)
    cases.append((recurrent, ["recurrent"]))
    for path, words in cases:
        out = tmp_path / f"out-{path.stem}"
        assert_user_error(
            cli("import-nir", str(path), "--encoder-from", encoder, "--out", str(out)), *words
        )
        assert not out.exists()
    out = tmp_path / "no-encoder"
    assert_user_error(
        cli("import-nir", str(nir_bundle.path / "body.nir"), "--out", str(out)), "--encoder-from"
    )
    assert not out.exists()
    assert_user_error(cli("simulate", str(nir_bundle.path)), "import-nir")
