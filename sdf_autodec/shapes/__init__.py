"""The 3D-shape domain: SDF datasets and loss, training, completion from scans, meshing, metrics."""
