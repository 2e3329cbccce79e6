"""Shared test set-up, as in Pyro's own suite: every test starts from a seeded RNG, an empty
param store and validation on."""

from __future__ import annotations

import os
import subprocess

import pyro
import pytest
import torch

# small thread count: the suite must fit a 2-core machine alongside other work
torch.set_num_threads(int(os.environ.get("PYROVAE_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _pyro_state():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    pyro.enable_validation(True)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (train, test), fetched once per machine (see pyrovae.data.load_mnist)."""
    from pyrovae import data

    return data.load_mnist()


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """The first 2000 training and 500 test images, for quick trainings."""
    train, test = mnist
    return train.images[:2000], train.labels[:2000], test.images[:500], test.labels[:500]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (a full disk on demand); skipped where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                              check=False)
    except OSError:
        done = None
    if done is None or done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched ENOSPC test covers the error")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, check=False)
