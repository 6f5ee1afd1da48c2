"""Loihi 2 side: Lava compatibility, path timing, Lava simulation, energy accounting."""
