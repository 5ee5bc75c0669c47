"""Mesh preprocessing: meshes → DeepSDF data layout (SDF samples, normalisation, surface samples, scans).

Imports numpy, trimesh, open3d and ``sdf_autodec.geometry`` only — never torch training code.
"""
