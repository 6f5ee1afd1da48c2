"""gac-deploy: Gated Attention Coding SNNs from training to Loihi 2.

Importing this package is cheap: it does not import Lava or lava-dl. Those load
through :mod:`gac_deploy.lava_compat` when a command needs them.

It sets one process default, before torch loads: ``GOMP_SPINCOUNT`` (unless already
set). torch's OpenMP threads (GNU libgomp) otherwise spin some 300,000 times waiting
for the next parallel operation before they sleep; on a machine with few cores they
take the core from the emulator's compiled neuron passes, which run between torch's
operations (:mod:`gac_deploy.chip.neuron_passes`), and slow them by about a third. A
short spin keeps torch's own back-to-back operations as fast (training and float
inference measured unchanged). libgomp reads it once, when torch is first imported:
import gac_deploy before torch for it to apply.
"""

import os as _os

OPENMP_SPIN = "1000"  # spins before an idle OpenMP thread sleeps (libgomp's default: 300000)
_os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)

__version__ = "0.1.0"
