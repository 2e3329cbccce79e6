"""Data-parallel fit: two CPU processes with gloo on 127.0.0.1.

Checks that the ranks' parameters are identical after training (gradients are averaged and
every rank starts from rank 0's initialisation) and that two ranks with local batch B follow
the ELBO trajectory of one process with batch 2B (the plate scales each rank's loss to the
full N, so the averaged gradient is that of one 2B-batch estimate).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyro
import pytest
import torch

from pyrovae import distributed as ddp
from pyrovae.data import load_mnist
from pyrovae.infer import ReparamTrace_ELBO
from pyrovae.models import build_vae
from pyrovae.train import TrainConfig, Trainer, fit, load_checkpoint
from pyrovae.train.ddp_step import probe_usage
from pyrovae.train.elbo_module import ELBOModule

N_TRAIN, N_TEST, LOCAL_BATCH, EPOCHS = 800, 200, 25, 3
NET = {"hidden": (64,), "z_dim": 8}


def test_shard_is_equal_and_disjoint():
    x = torch.arange(11)
    a, b = ddp.shard(x, 0, 2), ddp.shard(x, 1, 2)
    assert len(a) == len(b) == 5 and not set(a.tolist()) & set(b.tolist())


def test_two_gloo_ranks_match_one_process_with_twice_the_batch(tmp_path):
    ddp.spawn_local(2, ["--epochs", str(EPOCHS), "--batch-size", str(LOCAL_BATCH), "--subset", str(N_TRAIN),
                        "--test-subset", str(N_TEST), "--hidden", "64", "--z-dim", "8", "--out", str(tmp_path)])
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == 2
    for k, v in r0["state_dict"].items():
        assert torch.equal(v, r1["state_dict"][k]), k  # identical, not merely close
    # both ranks report the same, all-reduced training ELBO
    assert r0["history"]["train_elbo"] == r1["history"]["train_elbo"]

    train, test = load_mnist()
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    single = fit(build_vae(**NET), train.images[:N_TRAIN], test.images[:N_TEST], epochs=EPOCHS,
                 batch_size=2 * LOCAL_BATCH, device="cpu", progress=False, seed=0)
    # Monte Carlo error of these per-example ELBOs (800 images, 16 steps an epoch, tiny net):
    # other seeds move them by about 1-2 nats, so 5 nats is a few of those. (Adam is blind to a
    # constant gradient scale, so this checks the trajectory, not sum-versus-mean; the mean
    # is what keeps the step the same for other optimisers.)
    print("2 ranks", r0["history"]["test_elbo"], "1 process", single.test_elbo)
    for a, b in zip(r0["history"]["test_elbo"], single.test_elbo):
        assert abs(a - b) < 5.0, (r0["history"]["test_elbo"], single.test_elbo)
    for a, b in zip(r0["history"]["train_elbo"], single.train_elbo):
        assert abs(a - b) < 5.0, (r0["history"]["train_elbo"], single.train_elbo)
    assert r0["history"]["test_elbo"][-1] > r0["history"]["test_elbo"][0]


# -- the DDP engine, several scenarios in one pair of spawned gloo processes -----------------------

SMALL = {"hidden": (16,), "z_dim": 4}
PER_RANK, SMALL_BATCH = 100, 25


def _small_vae(kind: str) -> torch.nn.Module:
    pyro.set_rng_seed(1 + len(kind))  # a different initialisation per scenario; rank 0's is broadcast anyway
    pyro.clear_param_store()  # a frozen parameter is not pushed to the store: it would adopt the last run's value
    vae = build_vae(**SMALL)
    if kind == "unused_and_frozen":
        vae.spare = torch.nn.Linear(3, 3)  # a part the loss never uses: no gradient, ever
        vae.encoder.body[0].bias.requires_grad_(False)  # frozen: neither trained nor reduced
    elif kind == "batchnorm":  # running statistics: buffers that every training step writes
        vae.encoder.body = torch.nn.Sequential(*vae.encoder.body, torch.nn.BatchNorm1d(SMALL["hidden"][-1]))
    return vae


def _train(kind: str, x: torch.Tensor, out: Path, rank: int, loss=None, compression: str | None = None,
           allreduce: str = "auto") -> dict:
    from torch.nn.parallel import DistributedDataParallel

    vae = _small_vae(kind)
    if rank == 1:  # a different start on rank 1: DDP (or the fallback's broadcast) must replace it by rank 0's
        with torch.no_grad():
            for p in vae.parameters():
                p.add_(1.0)
    frozen = vae.encoder.body[0].bias.detach().clone()
    config = TrainConfig(epochs=2, batch_size=SMALL_BATCH, progress=False, seed=3, gradient_compression=compression,
                         gradient_allreduce=allreduce)
    name = kind if compression is None else f"{kind}-{compression}"
    name = name if allreduce == "auto" else f"{name}-{allreduce}"
    trainer = Trainer(vae, config, loss=loss, device="cpu", distributed=True,
                      checkpoint=out / f"{name}-written-by-rank{rank}.pt")
    trainer.prepare(x).run()
    step = trainer.step
    return {"step": type(step).__name__, "ddp": isinstance(getattr(step, "engine", None), DistributedDataParallel),
            "find_unused": getattr(step, "find_unused_parameters", None), "sync": getattr(step, "sync_buffers", None),
            "params": {n: p.detach().clone() for n, p in vae.named_parameters()},
            "frozen_before": frozen, "state": {k: v.detach().clone() for k, v in vae.state_dict().items()},
            "train_elbo": trainer.history.train_elbo,
            "comm_hook": _comm_hook(getattr(step, "engine", None))}


def _comm_hook(engine) -> str | None:
    """The name of the state class of ``engine``'s communication hook (None: no hook, or no DDP)."""
    hooks = getattr(engine, "_comm_hooks", None)
    if not hooks:
        return None
    state = hooks[0][1] if isinstance(hooks[0], tuple) else None
    return type(state).__name__


def _scenarios(rank: int, world: int, port: int, out: str) -> None:
    import datetime
    import os

    import torch.distributed as dist
    from pyro.infer import TraceGraph_ELBO

    import pyrovae.train.distributed as collectives

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120))
    flat_calls = []
    flat = collectives.average_gradients
    collectives.average_gradients = lambda params: (flat_calls.append(1), flat(params))[1]
    try:
        train, _ = load_mnist()
        x = train.images[: world * PER_RANK]
        results = {kind: _train(kind, x, Path(out), rank) for kind in ("plain", "unused_and_frozen", "batchnorm")}
        results["plain"]["flat_calls"] = len(flat_calls)
        results["bf16"] = _train("plain", x, Path(out), rank, compression="bf16")  # plain's start and data
        results["gloo"] = _train("plain", x, Path(out), rank, allreduce="process_group")  # likewise
        results["loss_and_grads_only"] = _train("loss_and_grads_only", x, Path(out), rank, loss=TraceGraph_ELBO())
        results["loss_and_grads_only"]["flat_calls"] = len(flat_calls)
        results["elsewhere"] = _shared_memory_on_another_machine(rank)
        torch.save(results, Path(out) / f"scenarios{rank}.pt")
    finally:
        dist.destroy_process_group()


def _shared_memory_on_another_machine(rank: int) -> dict:
    """What the shared-memory hook does when rank 1 cannot see rank 0's file (as on another machine)."""
    import os

    import pyrovae.train.shared_memory as shm
    from pyrovae.train.distributed import wrap_ddp

    params = list(_small_vae("plain").parameters())
    real_exists = os.path.exists
    if rank == 1:
        shm.os.path.exists = lambda p: False if "pyrovae-ddp-" in str(p) else real_exists(p)
    try:
        hook = shm.shared_memory_hook(params)
        try:
            wrap_ddp(_small_vae("plain"), allreduce="shared_memory")
            forced = "no error"
        except ValueError as e:
            forced = str(e)
    finally:
        shm.os.path.exists = real_exists
    real_fallocate = os.posix_fallocate
    if rank == 0:  # a /dev/shm too small for the buffer
        shm.os.posix_fallocate = lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    try:
        full = shm.shared_memory_hook(params)
    finally:
        shm.os.posix_fallocate = real_fallocate
    return {"hook": hook, "forced": forced, "full": full}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory, mnist):
    import torch.multiprocessing as mp

    from pyrovae.cli.distributed import free_port

    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_scenarios, args=(2, free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    return out, [torch.load(out / f"scenarios{r}.pt") for r in (0, 1)]


def test_fit_runs_on_ddp_with_parameters_identical_across_ranks(scenarios):
    _, (r0, r1) = scenarios
    for kind in ("plain", "unused_and_frozen", "batchnorm"):
        assert r0[kind]["step"] == "DDPStep" and r0[kind]["ddp"] and r1[kind]["ddp"], kind
        for name, p in r0[kind]["params"].items():
            assert torch.equal(p, r1[kind]["params"][name]), (kind, name)  # rank 1's +1 start is gone
        assert r0[kind]["train_elbo"] == r1[kind]["train_elbo"], kind  # the all-reduced epoch ELBO
    assert r0["plain"]["flat_calls"] == 0  # DDP averaged the gradients, not the flat all-reduce
    # the default VAE's buffers (its prior's loc and scale) never change: identical as well
    assert all(torch.equal(v, r1["plain"]["state"][k]) for k, v in r0["plain"]["state"].items())


def test_bf16_gradient_compression_keeps_ranks_identical_and_the_trajectory_close(scenarios):
    _, (r0, r1) = scenarios
    bf16, plain = r0["bf16"], r0["plain"]
    assert bf16["ddp"] and bf16["comm_hook"] == "NoneType" and r0["gloo"]["comm_hook"] is None
    for name, p in bf16["params"].items():
        assert torch.equal(p, r1["bf16"]["params"][name]), name  # every rank applies the same rounded average
    # the same start, data and draws: only the gradients' rounding to bf16 (8 significant bits) differs
    assert any(not torch.equal(p, plain["params"][n]) for n, p in bf16["params"].items())
    for a, b in zip(bf16["train_elbo"], plain["train_elbo"], strict=True):
        assert a == pytest.approx(b, rel=2e-3)


def test_shared_memory_is_the_default_on_one_machine_and_gives_gloos_bits(scenarios):
    _, (r0, r1) = scenarios
    for kind in ("plain", "unused_and_frozen", "batchnorm"):  # gradient_allreduce="auto" on CPU ranks of one machine
        assert r0[kind]["comm_hook"] == r1[kind]["comm_hook"] == "SharedMemoryAllReduce", kind
    shared, gloo = r0["plain"], r0["gloo"]
    # the same start, data and draws; two ranks: a/2 + b/2 in both, so the same bits, not merely close
    for name, p in shared["params"].items():
        assert torch.equal(p, gloo["params"][name]), name
        assert torch.equal(p, r1["gloo"]["params"][name]), name
    assert shared["train_elbo"] == gloo["train_elbo"]
    import os
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("pyrovae-ddp-")]  # nothing left behind


def test_shared_memory_steps_aside_where_a_rank_cannot_see_the_buffer(scenarios):
    _, (r0, r1) = scenarios
    for r in (r0, r1):  # both ranks agree: auto falls back to the process group, and a forced request says why
        assert r["elsewhere"]["hook"] is None
        assert "needs every rank on one machine" in r["elsewhere"]["forced"]
        assert "allreduce='process_group'" in r["elsewhere"]["forced"]
        assert r["elsewhere"]["full"] is None  # no room in /dev/shm on rank 0: every rank keeps the process group
    import os
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("pyrovae-ddp-")]


def test_ddp_settings_follow_what_the_loss_uses(scenarios):
    _, (r0, r1) = scenarios
    for r in (r0, r1):  # every rank takes the same decision
        assert (r["plain"]["find_unused"], r["plain"]["sync"]) == (False, False)
        assert (r["unused_and_frozen"]["find_unused"], r["unused_and_frozen"]["sync"]) == (True, False)
        assert (r["batchnorm"]["find_unused"], r["batchnorm"]["sync"]) == (False, True)
    frozen = r0["unused_and_frozen"]
    assert torch.equal(frozen["params"]["encoder.body.0.bias"], frozen["frozen_before"])  # rank 0's: untouched
    assert torch.equal(r1["unused_and_frozen"]["params"]["encoder.body.0.bias"], frozen["frozen_before"])


def test_an_elbo_without_differentiable_loss_falls_back_to_the_flat_all_reduce(scenarios):
    _, (r0, r1) = scenarios
    fallback = r0["loss_and_grads_only"]
    assert fallback["step"] == "TorchStep" and not fallback["ddp"]
    assert fallback["flat_calls"] == 2 * (PER_RANK // SMALL_BATCH)  # one per step: 2 epochs of 4 steps
    for name, p in fallback["params"].items():
        assert torch.equal(p, r1["loss_and_grads_only"]["params"][name]), name


def test_only_rank_0_writes_checkpoints_and_they_load_in_one_process(scenarios):
    out, (r0, _) = scenarios
    for kind in ("plain", "unused_and_frozen", "batchnorm", "loss_and_grads_only"):
        assert (out / f"{kind}-written-by-rank0.pt").is_file(), kind
        assert not (out / f"{kind}-written-by-rank1.pt").exists(), kind
    vae, payload = load_checkpoint(out / "plain-written-by-rank0.pt")  # a fresh VAE, no process group
    assert set(payload["model_state"]) == set(r0["plain"]["state"])  # the VAE's own keys: no "module." prefix
    assert not any(k.startswith(("module.", "vae.")) for k in payload["model_state"])
    for k, v in vae.state_dict().items():
        assert torch.equal(v, r0["plain"]["state"][k]), k


# -- pieces that need no process group ------------------------------------------------------------

def test_elbo_module_forward_is_the_elbos_differentiable_loss():
    vae, x = build_vae(**SMALL), load_mnist()[0].images[:8].bernoulli()
    elbo = ReparamTrace_ELBO()
    module = ELBOModule(vae, elbo, num_data=1000)
    assert {n for n, _ in module.named_parameters()} == {f"vae.{n}" for n, _ in vae.named_parameters()}
    pyro.set_rng_seed(5)
    got = module(x)
    pyro.set_rng_seed(5)
    want = elbo.differentiable_loss(vae.model, vae.guide, x, num_data=1000)
    assert got.requires_grad and torch.equal(got, want)


def test_elbo_module_refuses_an_elbo_with_only_loss_and_grads():
    from pyro.infer import TraceGraph_ELBO

    with pytest.raises(TypeError, match=r"TraceGraph_ELBO has no differentiable_loss.*flat all-reduce"):
        ELBOModule(build_vae(**SMALL), TraceGraph_ELBO(), num_data=10)


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.spare, self.norm = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)
        self.frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)
        self.register_buffer("constant", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.norm(self.used(x)) * self.frozen + torch.randn(3)).square().sum()


def test_probe_finds_unused_parameters_and_written_buffers_and_undoes_itself():
    toy, x = _Toy(), torch.randn(6, 4)
    toy.used.weight.grad = torch.full_like(toy.used.weight, 7.0)  # a gradient that was there before
    buffers = {k: v.clone() for k, v in toy.state_dict().items() if "norm" in k}
    rng = torch.get_rng_state()
    usage = probe_usage(toy, (x,))
    assert usage.unused == ["spare.weight", "spare.bias"]  # frozen is not trained, so not listed
    assert set(usage.written_buffers) == {"norm.running_mean", "norm.running_var", "norm.num_batches_tracked"}
    assert torch.equal(torch.get_rng_state(), rng)  # its draws came from a forked RNG
    assert all(torch.equal(v, toy.state_dict()[k]) for k, v in buffers.items())  # running statistics restored
    assert torch.equal(toy.used.weight.grad, torch.full_like(toy.used.weight, 7.0)) and toy.used.bias.grad is None


# -- two nodes on this machine: two torchrun launchers, one rendezvous on 127.0.0.1 -------------------

def test_two_torchrun_launchers_as_two_nodes_train_one_model(tmp_path, mnist):
    import os
    import subprocess
    import sys

    from pyrovae.cli.distributed import free_port

    root = Path(__file__).resolve().parents[2]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
              "--master_addr", "127.0.0.1", "--master_port", str(port)]
    job = ["-m", "pyrovae.distributed", "--epochs", "1", "--batch-size", "25", "--subset", "200",
           "--test-subset", "50", "--hidden", "16", "--z-dim", "4", "--out", str(tmp_path)]
    nodes = [subprocess.Popen([*launch, "--node_rank", str(r), *job], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path) for r in (1, 0)]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    lines = [json.loads(line) for line in outputs[1][0].splitlines() if line.startswith("{")]  # node 0 prints
    assert [row["world"] for row in lines] == [2]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    for k, v in r0["state_dict"].items():
        assert torch.equal(v, r1["state_dict"][k]), k
    assert r0["history"]["train_elbo"] == r1["history"]["train_elbo"] == [lines[0]["train_elbo"]]


def test_gradient_compression_is_checked_and_needs_ddp():
    from pyrovae.train.distributed import wrap_ddp
    from pyrovae.train.steps import make_step

    with pytest.raises(ValueError, match="gradient_compression must be 'bf16' or None, got 'int8'"):
        TrainConfig(epochs=1, batch_size=10, gradient_compression="int8")
    vae = build_vae(**SMALL)
    with pytest.raises(ValueError, match="needs distributed=True over two or more ranks"):
        make_step(vae, ReparamTrace_ELBO(), None, 1e-3, num_data=10, gradient_compression="bf16")
    with pytest.raises(ValueError, match="gradient_allreduce='shared_memory' is how DDP's gradient buckets travel"):
        make_step(vae, ReparamTrace_ELBO(), None, 1e-3, num_data=10, gradient_allreduce="shared_memory")
    with pytest.raises(ValueError, match="compression must be 'bf16' or None"):
        wrap_ddp(vae, compression="fp16")  # refused before DDP (or a process group) is touched
    with pytest.raises(ValueError, match="allreduce must be one of"):
        wrap_ddp(vae, allreduce="mpi")
    with pytest.raises(ValueError, match="do not go together"):
        wrap_ddp(vae, compression="bf16", allreduce="shared_memory")
    with pytest.raises(ValueError, match="gradient_allreduce must be 'auto' or 'shared_memory' or 'process_group'"):
        TrainConfig(epochs=1, batch_size=10, gradient_allreduce="shm")
