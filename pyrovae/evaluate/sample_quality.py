r"""Small, model-agnostic measures used to judge generative and detection results.

- :func:`roc_auc`: area under the ROC curve of a score against binary labels (anomaly
  detection), computed exactly from ranks, with ties counted as one half.
- :func:`nearest_distance` and :func:`far_fraction`: how far points (decoded samples, or
  latent draws) lie from the nearest member of a reference set (training images, or
  training codes). A prior draw far from every training code decodes to something the
  decoder never learned.
- :class:`DigitClassifier`, :func:`train_digit_classifier` and
  :func:`classifier_log_prob`: a small MNIST classifier whose confidence on decoded samples
  is a sample-quality proxy, in the spirit of the Inception score.

References:

1. Hanley, J. A. and McNeil, B. J. (1982). The meaning and use of the area under a
   receiver operating characteristic (ROC) curve. Radiology.
2. Salimans, T. et al. (2016). Improved Techniques for Training GANs. NeurIPS (a
   classifier's confidence on samples as a quality score).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores higher than
    a random negative (Mann–Whitney U / (n_pos n_neg)).

    :param scores: ``(N,)`` higher means "more likely positive".
    :param labels: ``(N,)`` booleans or 0/1.
    :raises ValueError: if either class is empty or the shapes differ.
    """
    scores = torch.as_tensor(scores).detach().flatten().double().cpu()
    labels = torch.as_tensor(labels).detach().flatten().bool().cpu()
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in shape")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs both classes, got {n_pos} positives and {n_neg} negatives")
    # average 1-based ranks, tied scores sharing the mean of their ranks
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # (U,) rank of the last member of each tie group
    ranks = (last - (counts - 1) / 2)[inverse]  # (N,)
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


@torch.no_grad()
def nearest_distance(x: torch.Tensor, reference: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Euclidean distance from each row of ``x`` to its nearest row of ``reference``.

    :param x: ``(N, *shape)``, flattened per row.
    :param reference: ``(M, *shape)``.
    :param batch_size: rows of ``x`` per distance block (memory is ``batch_size * M``).
    :returns: ``(N,)``.
    """
    a = x.flatten(1).float()  # (N, D)
    b = reference.flatten(1).float().to(a.device)  # (M, D)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} features per row but reference has {b.shape[1]}")
    return torch.cat([torch.cdist(chunk, b).min(dim=1).values for chunk in a.split(batch_size)])


@torch.no_grad()
def far_fraction(draws: torch.Tensor, codes: torch.Tensor, quantile: float = 0.99) -> tuple[float, float]:
    """Fraction of ``draws`` farther from every code than the codes are from each other.

    The threshold is the ``quantile`` of the codes' own nearest-neighbour distances, so
    the measure does not depend on the scale of the space: a draw is "far" when it is more
    isolated from the data than 99% of the data are from their neighbours.

    :param draws: ``(N, z_dim)`` points to test (e.g. prior draws).
    :param codes: ``(M, z_dim)`` training codes.
    :param quantile: which nearest-neighbour distance among codes sets the threshold.
    :returns: ``(fraction, threshold)``.
    """
    if len(codes) < 2:
        raise ValueError("far_fraction needs at least 2 codes")
    d = torch.cdist(codes.float(), codes.float())  # (M, M)
    d.fill_diagonal_(math.inf)
    threshold = float(torch.quantile(d.min(dim=1).values, quantile))
    return float((nearest_distance(draws, codes) > threshold).float().mean()), threshold


class DigitClassifier(nn.Module):
    """A small MLP classifier for 28x28 digits: ``x (batch, 1, 28, 28) -> logits (batch, 10)``.

    :param x_shape: image shape.
    :param hidden: hidden width.
    :param num_classes: number of classes.
    """

    def __init__(self, x_shape: tuple[int, ...] = (1, 28, 28), hidden: int = 256, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(x_shape), hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (batch, num_classes)


def train_digit_classifier(
    images: torch.Tensor, labels: torch.Tensor, epochs: int = 2, batch_size: int = 128, lr: float = 1e-3, seed: int = 0
) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with Adam and cross-entropy (plain PyTorch).

    :param images: ``(N, 1, 28, 28)`` grey levels in [0, 1].
    :param labels: ``(N,)`` int64.
    :returns: the classifier, in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = DigitClassifier(tuple(images.shape[1:]), num_classes=int(labels.max()) + 1)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for idx in order.split(batch_size):
            loss = F.cross_entropy(clf(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf.eval()


@torch.no_grad()
def classifier_log_prob(clf: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The classifier's log-probability of each image's class, ``(N,)``.

    With ``labels`` it is the log-probability of the given class (did the generator draw the
    digit it was asked for?); without, of the most likely class (does the image look like
    *some* digit? Near 0 for a clean digit, towards ``-log 10`` for a blur).
    """
    logp = torch.log_softmax(clf(x), dim=-1)  # (N, C)
    if labels is None:
        return logp.max(dim=-1).values
    return logp.gather(1, labels.long().view(-1, 1)).squeeze(1)
