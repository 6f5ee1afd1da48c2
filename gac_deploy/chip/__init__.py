"""The chip, simulated: the quantised PyTorch reference (reference.py), Lava's CPU
simulation of Loihi 2 (lava_runner.py), the batched bit-exact emulator (emulator.py, with
int8_conv.py, oneDNN's exact int8 convolution, and neuron_passes.py, its compiled numba
neuron passes), and ``gac-deploy simulate`` (simulate.py: a bundle through the emulator or
Lava, checked against the reference)."""
