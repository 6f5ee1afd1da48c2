"""Export: the deployment bundle and its formats. The bundle's file names and manifest
(manifest.py), writing it for a target and importing NIR (targets.py), opening and
verifying it (loading.py); the host encoder as ONNX (onnx_encoder.py), the quantised body
as lava-dl NetX HDF5 (netx_hdf5.py) and the float body as a NIR graph (nir_graph.py)."""
