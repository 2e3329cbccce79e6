"""Data containers: a labelled image set that is also a map-style ``Dataset``."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ImageSet"]


@dataclasses.dataclass(eq=False, repr=False)  # tensors: no element-wise __eq__, no huge repr
class ImageSet(Dataset):
    """
    A labelled image set held as two tensors; also a map-style
    :class:`torch.utils.data.Dataset` whose items are ``(image, label)``.

    :param Tensor images: float32 images, shape ``(N, *x_shape)``; for MNIST
        ``(N, 1, 28, 28)`` with values in [0, 1].
    :param Tensor labels: int64 class labels, shape ``(N,)``.
    """

    images: Tensor  # (N, *x_shape)
    labels: Tensor  # (N,)

    def __post_init__(self) -> None:
        if self.images.dim() < 1 or self.labels.dim() != 1:
            raise ValueError(
                f"ImageSet expects images (N, *x_shape) and labels (N,); got "
                f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"ImageSet has {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"ImageSet(n={len(self)}, x_shape={self.x_shape}, dtype={self.images.dtype}, "
            f"device={self.device})"
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one image, e.g. ``(1, 28, 28)``."""
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        """Device the images live on."""
        return self.images.device

    def to(self, device: torch.device | str) -> ImageSet:
        """
        Return a new :class:`ImageSet` with both tensors on ``device`` (this one is
        unchanged).

        :param device: target device, e.g. ``"cuda"``.
        """
        return ImageSet(self.images.to(device), self.labels.to(device))
