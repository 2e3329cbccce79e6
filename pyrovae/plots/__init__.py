"""Matplotlib figures. Layout only: every number shown is computed elsewhere.

Each function returns a ``matplotlib.figure.Figure`` (not tied to pyplot, so importing this
package changes no global state) and, given ``path``, also saves it as a PNG, atomically.
One module per family of figures; everything is re-exported here.
"""

from .curves import learning_curves
from .diagnostics import unit_activity
from .images import image_grid, labelled_grid, mosaic, new_figure, reconstructions, save
from .kl import kl_fits
from .latent import latent_bubbles, latent_scatter, latent_snapshots
from .posterior import posterior_contours, posterior_vs_guides
from .walks import manifold

__all__ = [
    "image_grid",
    "kl_fits",
    "labelled_grid",
    "latent_bubbles",
    "latent_scatter",
    "latent_snapshots",
    "learning_curves",
    "manifold",
    "mosaic",
    "new_figure",
    "posterior_contours",
    "posterior_vs_guides",
    "reconstructions",
    "save",
    "unit_activity",
]
