"""Pure numpy/torch geometry: grids, normalisation, the sign convention, analytic SDFs, point clouds."""
