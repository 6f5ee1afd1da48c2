"""The network as the chip sees it: a typed graph of populations and edges, Loihi 2's
number formats and limits, quantisation, delay balancing and op counts. No torch.nn
module and no Lava here; everything above (models, export, chip, energy, training) asks
these modules for what they know."""
