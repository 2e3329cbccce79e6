"""CUDA: one SVI step with every prior and likelihood, and no CPU tensor created inside
model or guide. Skipped where CUDA is absent (as on CI)."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tests.models.test_model import LIKELIHOODS, PRIORS, make_data, make_vae

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


class CPUTensorWatch(TorchDispatchMode):
    """Records every op whose output is a tensor on the CPU."""

    def __init__(self):
        super().__init__()
        self.cpu_ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat, _ = tree_flatten(out)
        if any(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in flat):
            self.cpu_ops.append(str(func))
        return out


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("lik", sorted(LIKELIHOODS))
@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_svi_step_on_cuda_creates_no_cpu_tensor(prior, lik, net):
    vae = make_vae(prior, lik, net).to("cuda")
    x = make_data(lik).to("cuda")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    svi.step(x, num_data=100)  # first step creates the optimiser state
    with CPUTensorWatch() as watch:
        guide_tr = poutine.trace(vae.guide).get_trace(x, num_data=100)
        model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(x, num_data=100)
        model_tr.log_prob_sum()
    assert watch.cpu_ops == [], f"CPU tensors created in model/guide by {sorted(set(watch.cpu_ops))}"
    loss = svi.step(x, num_data=100)
    assert torch.isfinite(torch.tensor(loss))
    assert model_tr.nodes["z"]["value"].device.type == "cuda"
