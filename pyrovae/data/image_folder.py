"""A folder of PNG/JPEG images as one tensor (a data source of :mod:`pyrovae.data.sources`).

The images are read with Pillow (matplotlib's own dependency), as grey when every image is
grey and as RGB otherwise (an alpha channel is dropped). They must share one size unless
``image_size`` is given, which resizes each. When every image sits in a sub-folder, the
sub-folders are the classes (``folder/cat/1.png`` -> the label of ``cat``), in sorted order,
as in ``torchvision.datasets.ImageFolder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataSourceError

__all__ = ["IMAGE_SUFFIXES", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _error(message: str) -> Exception:
    return DataSourceError(message)


def _open(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # palette, grey, alpha: all to 8-bit RGB
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # PIL sizes are (W, H)
            return np.asarray(im)  # (H, W, 3) uint8
    except OSError as e:
        raise _error(f"{path} cannot be read as an image ({e})") from None


def _labels(folder: Path, files: list[Path]) -> tuple[np.ndarray | None, list[str] | None]:
    # (N,) class indices and the class names (sorted sub-folders), or (None, None)
    parents = [f.parent for f in files]
    if any(p == folder for p in parents):
        return None, None  # some images sit in the folder itself: no classes
    classes = sorted({p.relative_to(folder).parts[0] for p in parents})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[p.relative_to(folder).parts[0]] for p in parents], dtype=np.int64), classes


def read_image_folder(folder: Path, image_size: tuple[int, int] | None, notes: list[str]) -> dict[str, Any]:
    """The images under ``folder`` as ``{"x_train": uint8 (N, H, W) or (N, H, W, 3), "y_train": ...,
    "classes": [sub-folder names] or None}``.

    :param image_size: ``(H, W)`` to resize every image to; ``None`` needs one size throughout.
    :param notes: what was read is appended here.
    :raises DataSourceError: no images, mixed sizes without ``image_size``, or unreadable files.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise _error(f"{folder} holds {len(files)} {'/'.join(IMAGE_SUFFIXES)} image(s); a data set needs at least 2")
    images = [_open(f, image_size) for f in files]
    sizes = sorted({im.shape[:2] for im in images})
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sizes[:4]) + (", ..." if len(sizes) > 4 else "")
        raise _error(f"{folder}: the images have {len(sizes)} sizes ({shown}); give an image size to resize them "
                     f"all to (on the command line: --image-size {sizes[0][0]})")
    x = np.stack(images)  # (N, H, W, 3)
    grey = bool((x[..., :1] == x).all())
    labels, classes = _labels(folder, files)
    notes.append(f"read {len(files)} {'grey' if grey else 'colour'} images from {folder}"
                 + (f" in {int(labels.max()) + 1} classes (sub-folders)" if labels is not None else ""))
    return {"x_train": x[..., 0] if grey else x, "y_train": labels, "classes": classes}
