"""Posterior inspection: computation only; :mod:`pyrovae.plots` draws the results.

- :mod:`~pyrovae.inspect.codes`: latent codes of a data set, 2-D projections, snapshots
  during training, decodes of posterior draws;
- :mod:`~pyrovae.inspect.walks`: interpolation, manifold grids, traversals, attribute vectors;
- :mod:`~pyrovae.inspect.density`: where the latent mass is (spans of prior draws or codes),
  the prior's density on a grid, and highest-density levels that enclose a given mass;
- :mod:`~pyrovae.inspect.posterior_grid`: the true posterior of a 2-D latent on a grid,
  against the guide;
- :mod:`~pyrovae.inspect.denoise`: reconstruction from corrupted inputs;
- :mod:`~pyrovae.inspect.layers`: what the top layer of a hierarchical VAE controls.

The anomaly scores (:mod:`pyrovae.evaluate.anomaly`) and corruptions
(:mod:`pyrovae.data.corrupt`) are re-exported here too, where users of earlier versions
found them.
"""

from ..data.corrupt import corrupt
from ..evaluate.anomaly import AnomalyScores, anomaly_scores, rank
from .codes import LatentCodes, LatentSnapshots, encode_dataset, pca, posterior_decodes, project_2d
from .denoise import denoise
from .density import SIGMA_MASSES, DensityGrid, hdr_levels, latent_extent, prior_density, prior_samples, sigma_mass
from .layers import top_layer_grid
from .posterior_grid import PosteriorGrid, posterior_grid
from .walks import (
    ManifoldGrid,
    apply_attribute,
    attribute_vector,
    class_vector,
    interpolate,
    interpolate_inputs,
    manifold_grid,
    prior_quantiles,
    stroke_thickness,
    thickness_vector,
    traversal,
)

__all__ = [
    "SIGMA_MASSES",
    "AnomalyScores",
    "DensityGrid",
    "LatentCodes",
    "LatentSnapshots",
    "ManifoldGrid",
    "PosteriorGrid",
    "anomaly_scores",
    "apply_attribute",
    "attribute_vector",
    "class_vector",
    "corrupt",
    "denoise",
    "encode_dataset",
    "hdr_levels",
    "interpolate",
    "interpolate_inputs",
    "latent_extent",
    "manifold_grid",
    "pca",
    "posterior_decodes",
    "posterior_grid",
    "prior_density",
    "prior_quantiles",
    "prior_samples",
    "project_2d",
    "rank",
    "sigma_mass",
    "stroke_thickness",
    "thickness_vector",
    "top_layer_grid",
    "traversal",
]
