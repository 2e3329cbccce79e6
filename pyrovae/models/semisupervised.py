r"""The semi-supervised M2 VAE (Kingma et al. 2014): the label is a latent variable that is
observed for the labelled data and summed out for the rest.

.. math::

    p_\theta(x, y, z) = p(y)\, p(z)\, p_\theta(x \mid y, z), \qquad
    p(y) = \mathrm{Cat}(1/C), \quad p(z) = \mathcal{N}(0, I);

    q_\phi(y, z \mid x) = q_\phi(y \mid x)\, q_\phi(z \mid x, y).

For a labelled pair the bound is :math:`\mathcal{L}(x, y) = \mathbb{E}_{q(z|x,y)}[\log p(x|y,z)
+ \log p(y) + \log p(z) - \log q(z|x,y)]`; for an unlabelled x the label is enumerated,

.. math::

    \mathcal{U}(x) = \sum_y q_\phi(y|x)\, \mathcal{L}(x, y) + \mathcal{H}(q_\phi(y|x)),

which is what ``TraceEnum_ELBO(max_plate_nesting=1)`` computes from :meth:`~SemiSupervisedVAE.guide`
(its ``"y"`` site is marked for parallel enumeration, as ``config_enumerate`` would mark it).
The classifier :math:`q_\phi(y|x)` only learns from :math:`\mathcal{U}`'s label weights, so the
objective adds a classification loss on the labelled data (Kingma et al. 2014, eq. 9),

.. math::

    \mathcal{J}^\alpha = \sum_{(x,y) \in \mathcal{D}_l} -\mathcal{L}(x, y)
        + \sum_{x \in \mathcal{D}_u} -\mathcal{U}(x)
        + \alpha\, \mathbb{E}_{\tilde p_l(x, y)}[-\log q_\phi(y|x)], \qquad \alpha = 0.1\, N,

with :math:`N = N_l + N_u` all training points, i.e. each labelled point's cross-entropy
weighs :math:`0.1 N / N_l` against its own ELBO.

Sites: ``"y"`` (labels ``0..C-1``), ``"z"`` (event dim 1), ``"x"`` observed, all inside the plate
``"data"`` (dim -1) with ``num_data`` scaling.

References:

1. Kingma, D. P., Rezende, D. J., Mohamed, S. and Welling, M. (2014). Semi-Supervised Learning
   with Deep Generative Models. NeurIPS.
2. Pyro's ``examples/vae/ss_vae_M2.py`` (the same model with enumeration).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from .. import likelihoods as _likelihoods
from .. import nets
from .._util.batching import _batches, model_device
from .conditional import ConditionalVAE

#: Kingma et al. (2014)'s alpha is 0.1 times the number of training points
ALPHA_PER_DATUM = 0.1


class SemiSupervisedVAE(ConditionalVAE):
    """The M2 model: ``model(x, y=None)`` and ``guide(x, y=None)``, with ``y`` observed when given
    and enumerated (under ``TraceEnum_ELBO``) when not.

    :param encoder: q(z|x, y), e.g. :class:`pyrovae.nets.LabelledMLPEncoder` (y must broadcast:
        enumeration hands it ``(C, 1)`` labels against a ``(batch, ...)`` x).
    :param decoder: p(x|y, z), e.g. :class:`pyrovae.nets.LabelledMLPDecoder`.
    :param classifier: q(y|x) logits ``(batch, num_classes)``, e.g. :class:`pyrovae.nets.MLPClassifier`.
    :param likelihood: default Bernoulli.
    :param config: a JSON-able description of the networks, stored in checkpoints (so that a
        checkpoint of another network is refused on resuming); :func:`build_m2` fills it in.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, classifier: nn.Module,
                 likelihood: _likelihoods.Likelihood | None = None, config: dict | None = None) -> None:
        super().__init__(encoder, decoder, likelihood)
        if getattr(classifier, "num_classes", self.num_classes) != self.num_classes:
            raise ValueError(f"the classifier has {classifier.num_classes} classes, the encoder {self.num_classes}")
        self.classifier = classifier
        self.config = dict(config or {})

    def _plate(self, x: torch.Tensor, num_data: int | None) -> pyro.plate:
        if tuple(x.shape[1:]) != self.x_shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, self.x_shape))})")
        return pyro.plate("data", num_data or len(x), subsample=torch.arange(len(x), device=x.device))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None) -> None:
        """p(y) p(z) p(x|y,z); ``y`` ``(batch,)`` observed when given."""
        if y is not None:
            self._check(x, y)
        pyro.module("decoder", self.decoder)
        with self._plate(x, num_data):
            y = pyro.sample("y", dist.Categorical(logits=x.new_zeros(self.num_classes)), obs=y)  # (batch,) or (C, 1)
            z = pyro.sample("z", self.prior(x))  # (..., batch, z_dim)
            pyro.sample("x", self.likelihood(self.decoder(z, y), len(self.x_shape)), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None) -> None:
        """q(y|x) (when ``y`` is not given; enumerated) and q(z|x, y)."""
        pyro.module("encoder", self.encoder)
        pyro.module("classifier", self.classifier)
        with self._plate(x, num_data):
            if y is None:
                y = pyro.sample("y", dist.Categorical(logits=self.classifier(x)), infer={"enumerate": "parallel"})
            pyro.sample("z", dist.Normal(*self.encoder(x, y)).to_event(1))

    def classification_loss(self, x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
        r"""The α term for a labelled batch, :math:`\alpha \cdot \frac{1}{B} \sum_n -\log q(y_n|x_n)`:
        an unbiased estimate of :math:`\alpha\, \mathbb{E}_{\tilde p_l}[-\log q(y|x)]`."""
        return alpha * F.cross_entropy(self.classifier(x), y)

    @torch.no_grad()
    def classify(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The most probable label under q(y|x), ``(N,)``."""
        device = model_device(self)
        return torch.cat([self.classifier(xb.to(device)).argmax(-1) for xb in _batches(x, batch_size)])

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
        """The classifier's accuracy on ``(x, y)``."""
        return float((self.classify(x, batch_size) == y.to(model_device(self))).float().mean())

    @torch.no_grad()
    def conditional_samples(self, per_digit: int) -> torch.Tensor:
        """One row per label: ``per_digit`` prior draws of z (shared down each column, so a
        column is one style) decoded with every label.

        :returns: ``(num_classes, per_digit, *x_shape)``.
        """
        z = self.prior(next(self.decoder.parameters())).sample((per_digit,))  # (n, z_dim)
        y = torch.arange(self.num_classes, device=z.device)
        out = self.decode_mean(z.expand(self.num_classes, -1, -1), y[:, None])  # (C, n, *x_shape)
        return out

    @torch.no_grad()
    def style_transfer(self, x: torch.Tensor, y: torch.Tensor | None = None,
                       targets: torch.Tensor | None = None) -> torch.Tensor:
        """Encode each x with its label (or the classifier's, when ``y`` is ``None``), then decode
        that z with every target label (default all).

        :returns: ``(n, k, *x_shape)``: row i is x_i's style written as each target.
        """
        y = self.classify(x) if y is None else y
        targets = torch.arange(self.num_classes, device=x.device) if targets is None else targets
        return super().style_transfer(x, y, targets)


def build_m2(x_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, z_dim: int = 50,
             hidden: Sequence[int] = (500,), activation: str = "softplus") -> SemiSupervisedVAE:
    """Kingma et al.'s M2 network: one hidden layer of 500 softplus units in q(y|x), q(z|x,y) and
    p(x|y,z), z of 50 dimensions, a Bernoulli likelihood.

    :param x_shape: shape of one data point.
    :param num_classes: number of labels.
    :param z_dim: latent dimension.
    :param hidden: hidden widths of all three networks.
    :param activation: hidden non-linearity.
    """
    config = {"model": "m2", "x_shape": list(x_shape), "num_classes": int(num_classes), "z_dim": int(z_dim),
              "hidden": list(hidden), "activation": activation}
    return SemiSupervisedVAE(nets.LabelledMLPEncoder(x_shape, num_classes, hidden, z_dim, activation),
                             nets.LabelledMLPDecoder(z_dim, num_classes, tuple(reversed(hidden)), x_shape, activation),
                             nets.MLPClassifier(x_shape, hidden, num_classes, activation), config=config)


def split_labelled(images: torch.Tensor, labels: torch.Tensor, num_labelled: int,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A class-balanced labelled subset (``num_labelled / C`` per class, as Kingma et al.) and the rest.

    :param images: ``(N, *x_shape)``.
    :param labels: ``(N,)`` in ``0..C-1``.
    :param num_labelled: a multiple of the number of classes C.
    :returns: ``(x_labelled, y_labelled, x_unlabelled)``.
    """
    classes = int(labels.max()) + 1
    if num_labelled % classes or num_labelled < classes:
        raise ValueError(f"num_labelled must be a positive multiple of the {classes} classes, got {num_labelled}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    picked = torch.cat([order[labels[order] == c][: num_labelled // classes] for c in range(classes)])
    if len(picked) != num_labelled:
        raise ValueError(f"not enough examples of every class for {num_labelled} balanced labels")
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[picked] = False
    return images[picked], labels[picked], images[rest]
