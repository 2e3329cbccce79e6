"""Shared test set-up, as in Pyro's own suite: every test starts from a seeded RNG, an empty
param store and validation on."""

from __future__ import annotations

import os

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
