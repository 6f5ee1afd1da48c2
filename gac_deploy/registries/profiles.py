"""The energy profiles: a price in pJ for each kind of operation, and where the prices
come from. ``gac-deploy energy --profile`` lists them; :mod:`gac_deploy.energy` prices
an inference's operations with one.
"""

from __future__ import annotations

from dataclasses import dataclass

from gac_deploy.registries import Registry

HOROWITZ = "Horowitz, ISSCC 2014, 45 nm"


@dataclass(frozen=True, kw_only=True)
class EnergyProfile:
    """Energy in pJ per operation. Host operations (MAC, mul, add, host neuron update) run
    on a conventional processor; chip operations are synaptic events (``synop``), neuron
    updates and spikes on the neuromorphic core. ``source``: where the numbers come
    from (printed with every report); ``help``: one line for ``--help``."""

    name: str
    mac: float
    mul: float
    add: float
    synop: float
    neuron: float
    spike: float
    source: str
    help: str

    def price(self, op: str) -> float:
        """pJ of one operation of kind ``op``, as the energy report names kinds."""
        return {
            "MAC": self.mac,
            "mul": self.mul,
            "add": self.add,
            "host neuron update": self.mac,
            "AC": self.synop,
            "graded AC": self.synop,
            "neuron update": self.neuron,
            "spike": self.spike,
        }[op]


class ProfileRegistry(Registry[EnergyProfile]):
    """Profiles, each registered under its own name (:meth:`add`)."""

    def register(self, name: str, entry: EnergyProfile) -> EnergyProfile:
        if entry.name != name:
            raise ValueError(f"profile {entry.name!r} registered as {name!r}")
        return super().register(name, entry)

    def add(self, profile: EnergyProfile) -> EnergyProfile:
        return self.register(profile.name, profile)


PROFILES = ProfileRegistry("profile")

PAPER_PROFILE = PROFILES.add(
    EnergyProfile(
        name="horowitz45-fp32",
        mac=4.6,
        mul=3.7,
        add=0.9,
        synop=0.9,
        neuron=4.6,
        spike=0.0,
        source=f"{HOROWITZ}, 32-bit float: multiply 3.7, add 0.9 pJ (the paper's E_MAC 4.6, "
        "E_AC 0.9); a neuron update is priced as one MAC (decay multiply + add); spikes free",
        help="45 nm, 32-bit float: the paper's",
    )
)
DEFAULT_PROFILE = PAPER_PROFILE.name
PROFILES.add(
    EnergyProfile(
        name="horowitz45-int8",
        mac=0.23,
        mul=0.2,
        add=0.03,
        synop=0.03,
        neuron=0.23,
        spike=0.0,
        source=f"{HOROWITZ}, 8-bit integer: multiply 0.2, add 0.03 pJ; a neuron update as one MAC",
        help="45 nm, 8-bit integer",
    )
)
PROFILES.add(
    EnergyProfile(
        name="loihi",
        mac=4.6,
        mul=3.7,
        add=0.9,
        synop=23.6,
        neuron=52.0,
        spike=1.7,
        source="chip: Davies et al., IEEE Micro 2018 (Loihi): 23.6 pJ per synaptic op, 52 pJ "
        "per neuron update, 1.7 pJ per spike within a tile; host: horowitz45-fp32",
        help="Loihi's published chip figures, a 32-bit float host",
    )
)
