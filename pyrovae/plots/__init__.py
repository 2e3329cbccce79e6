"""Matplotlib figures. Layout only: every number shown is computed elsewhere.

Each function returns a ``matplotlib.figure.Figure`` (not tied to pyplot, so importing this
package changes no global state) and, given ``path``, also saves it as a PNG, atomically.
One module per family of figures; everything is re-exported here.
"""

from .curves import learning_curves
from .diagnostics import unit_activity
from .images import image_grid, new_figure, reconstructions, save
from .kl import kl_fits, posterior_vs_guides
from .latent import latent_bubbles, latent_scatter, latent_snapshots
from .posterior import posterior_contours
from .walks import labelled_grid, manifold, mosaic

__all__ = ["save", "new_figure", "image_grid", "reconstructions", "latent_scatter",
           "latent_bubbles", "latent_snapshots", "labelled_grid", "manifold", "mosaic", "posterior_contours", "unit_activity",
           "kl_fits", "posterior_vs_guides", "learning_curves"]
