"""Encoder and decoder networks.

An *encoder* maps ``x`` of shape ``(batch, *x_shape)`` to ``(loc, scale)`` of the
diagonal-Normal guide, each ``(batch, z_dim)`` with ``scale > 0``. A *decoder* maps ``z`` of
shape ``(batch, z_dim)`` to the likelihood's parameter tensor: ``(batch, *x_shape)`` (Bernoulli
logits, Gaussian/Laplace loc) or ``(batch, *x_shape, num_classes)`` (Categorical logits).
Any ``nn.Module`` that follows this protocol plugs into :class:`pyrovae.VAE`. The library's
encoders also give the features their Gaussian head reads (``context_dim`` and
``forward_with_context``, see :class:`GaussianEncoder`), the context of an IAF guide.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Radford, A., Metz, L. and Chintala, S. (2016). Unsupervised Representation Learning
   with Deep Convolutional Generative Adversarial Networks. ICLR.
3. Bowman, S. R. et al. (2016). Generating Sentences from a Continuous Space. CoNLL.
"""

from .conditional import ConditionalMLPDecoder, ConditionalMLPEncoder
from .conv import ConvDecoder, ConvEncoder
from .functional import MIN_SCALE, GaussianEncoder, GaussianHead, mlp, positive_scale
from .labelled import LabelledMLP, LabelledMLPDecoder, LabelledMLPEncoder, MLPClassifier
from .ladder import BottomUpEncoder, LadderEncoder, folded
from .mlp import MLPDecoder, MLPEncoder
from .noisy import NoisyEncoder
from .recurrent import RNNDecoder, RNNEncoder

__all__ = [
    "MIN_SCALE",
    "BottomUpEncoder",
    "ConditionalMLPDecoder",
    "ConditionalMLPEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "GaussianEncoder",
    "GaussianHead",
    "LabelledMLP",
    "LabelledMLPDecoder",
    "LabelledMLPEncoder",
    "LadderEncoder",
    "MLPClassifier",
    "MLPDecoder",
    "MLPEncoder",
    "NoisyEncoder",
    "RNNDecoder",
    "RNNEncoder",
    "folded",
    "mlp",
    "positive_scale",
]
