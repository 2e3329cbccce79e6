"""Matplotlib figures. Layout only: every number shown is computed elsewhere.

Each function returns a ``matplotlib.figure.Figure`` (not tied to pyplot, so importing this
package changes no global state) and, given ``path``, also saves it as a PNG, atomically.
One module per family of figures; everything is re-exported here.
"""

from .images import image_grid, new_figure, reconstructions, save
from .latent import latent_scatter

__all__ = ["save", "new_figure", "image_grid", "reconstructions", "latent_scatter"]
