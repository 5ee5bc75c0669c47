"""The project's sign convention for signed distances.

SDF < 0 inside a shape, > 0 outside (DeepSDF, Open3D's ``compute_signed_distance``).
trimesh's ``proximity.signed_distance`` uses the opposite convention (positive inside): multiply
its output by :data:`TRIMESH_TO_SDF_SIGN` at that boundary, nowhere else.
"""

INSIDE_IS_NEGATIVE = True

TRIMESH_TO_SDF_SIGN = -1.0
"""Factor that turns trimesh's signed distance (positive inside) into ours (negative inside)."""
