"""Export: the body as a typed graph, its quantisation, and the deployment bundle."""
