"""gac-deploy: Gated Attention Coding SNNs from training to Loihi 2.

Importing this package is cheap: it does not import Lava or lava-dl. Those load
through :mod:`gac_deploy.lava_compat` when a command needs them.
"""

__version__ = "0.1.0"
