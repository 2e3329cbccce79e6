"""Training speed against peers: ``pyrovae.fit``, Pyro's own VAE example and Pythae, in one process.

Every contender trains the same 784-400-50 VAE (softplus hidden layers, Bernoulli likelihood,
Gaussian posterior with a diagonal covariance, standard-normal prior) with Adam at learning rate
1e-3 for one epoch over the same MNIST tensors (the 60k training images, or the first
``--subset``) at the same batch size, on the same device and thread count. Each repetition runs
every contender once, and the order is reversed on every other repetition; before the repetitions at each
batch size, every contender trains once, untimed, on the first ``--warmup`` images. The table gives each
contender's epoch time (min over ``--reps``) divided by the plain loop's, once with default Adam
and once with fused Adam. The JSON record also holds every raw time and the load average before
and after.

Contenders
----------

- ``plain`` and ``plain-fused``: the hand-written PyTorch loop of ``benchmarks/train_speed.py``
  (``run_plain``, imported from that script), with ``torch.optim.Adam`` default and
  ``fused=True``. These are the baselines and always run.
- ``fit`` and ``fit-call``: one ``train_speed.run_fit`` call, i.e. ``pyrovae.fit`` on
  ``build_vae(hidden=(400,), z_dim=50)`` with its defaults (Bernoulli, Adam 1e-3, the default
  loss). ``fit-call`` is the wall time of the whole call, entry checks included; ``fit`` is the
  training loop alone, the ``History.seconds`` of the same call.
- ``pyro-example``: Pyro's own VAE example, ``examples/vae/vae.py`` of
  https://github.com/pyro-ppl/pyro at commit ff6ae1c9572591791aae8842bcd702fcf0b46fd6
  (the training loop in its ``main``, also the ``train`` function of Pyro's VAE tutorial),
  reproduced in this file. **Kept:** its ``Encoder`` (``fc1`` 784→400, softplus, separate heads
  ``fc21`` for the location and ``fc22`` for ``exp`` of the scale), its ``Decoder`` (``fc1``
  50→400, softplus, ``fc21`` 400→784, ``sigmoid``), its ``model`` and ``guide`` (``pyro.module``
  registration, one ``pyro.plate("data", B)``, prior tensors of zeros and ones built per call,
  ``Normal(...).to_event(1)`` latent, ``Bernoulli(probs, validate_args=False).to_event(1)``
  observation, ``x.reshape(-1, 784)`` in the model and in the encoder), ``SVI`` with
  ``Trace_ELBO`` (not ``JitTrace_ELBO``, the example's default) and ``pyro.optim.Adam({"lr":
  1e-3})``, the loss summed over the batch without any rescaling to the data set
  (``svi.step(x)``), the loss accumulated as a Python float every step (``epoch_loss +=
  svi.step(x)``), and Pyro's default validation. Its sizes already are 784-400-50 and its
  default learning rate 1e-3. **Changed:** the data are the same in-memory tensors as the other
  routes, shuffled with one ``randperm`` and sliced per batch, with each batch dynamically
  binarised (``torch.bernoulli``) like the other routes; the example instead feeds grey levels
  in [0, 1] (the "relaxed Bernoulli values" of its comment) through a
  ``torch.utils.data.DataLoader`` (``shuffle=True``, ``num_workers=0``) over its
  ``MNISTCached`` data set, which fetches one image per index and collates every batch in
  Python; the example's batch size 256 becomes ``--batch-sizes``; the example's data set has
  all 60k training images, like here. The example's test-set evaluation, plots, visdom and
  t-SNE are left out, as is its check for Pyro 1.9.1 (this runs under the installed Pyro). The
  optional route ``pyro-example-dataloader`` keeps the DataLoader (over a
  ``TensorDataset`` of the same images and labels, ``shuffle=True``, default collation,
  binarising each collated batch) to show what the per-item fetching costs.
- ``pythae`` and ``pythae-call``: Pythae 0.1.2's ``VAE`` (``VAEConfig(input_dim=(1, 28, 28),
  latent_dim=50, reconstruction_loss="bce")``) with its ``BaseTrainer`` (``BaseTrainerConfig``:
  one epoch, ``learning_rate=1e-3``, ``optimizer_cls="Adam"``, the batch size as
  ``per_device_train_batch_size``, no evaluation set, no checkpoints), on an encoder and decoder
  written with Pythae's ``BaseEncoder`` / ``BaseDecoder`` in the same sizes (784→400 softplus,
  two 400→50 heads for the mean and the log-variance; 50→400 softplus, 400→784 sigmoid).
  ``pythae`` is the trainer's ``train_step`` (its epoch loop: its own ``DataLoader`` with
  ``shuffle=True`` and its collate function, the forward pass and loss, Adam, ``loss.item()``
  every step, its progress bar); ``pythae-call`` is the trainer's construction (which runs a
  model check on one batch) plus ``train()`` (which also copies the best model and saves the
  final one to a temporary folder). **Difference:** Pythae's trainer takes a fixed data set,
  so its images are binarised once per run (a static draw of the same images,
  ``pyrovae.data.binarize(..., "static", seed)``, outside the timing) instead of every
  batch. Pythae is optional (``pip install -e '.[bench]'``); without it these rows are
  skipped, with a message, and the record lists why.

Run::

    python benchmarks/peers.py --threads 1 --json benchmarks/results/peers_cpu.json
    python benchmarks/peers.py --subset 2000 --reps 1   # a tiny smoke run

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Bingham, E. et al. (2019). Pyro: Deep Universal Probabilistic Programming. JMLR.
3. Chadebec, C., Vincent, L. J. and Allassonnière, S. (2022). Pythae: Unifying Generative
   Autoencoders in Python. NeurIPS Datasets and Benchmarks.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyrovae.data import binarize, load_mnist


def _load_train_speed() -> ModuleType:
    """A private copy of ``benchmarks/train_speed.py`` (benchmarks/ is a folder of scripts, not
    a package), whose ``fit`` is wrapped to keep the :class:`~pyrovae.train.History` that
    ``run_fit`` drops, so one call gives both the whole-call and the loop time."""
    spec = importlib.util.spec_from_file_location("_peers_train_speed", Path(__file__).with_name("train_speed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fit = module.fit

    def fit_keeping_history(*args, **kwargs):
        module.last_history = fit(*args, **kwargs)
        return module.last_history

    module.fit = fit_keeping_history
    return module


ts = _load_train_speed()
HIDDEN, Z_DIM = ts.HIDDEN, ts.Z_DIM  # 400, 50
X_DIM = 784  # the example's hard-coded image size
Run = Callable[[int, int], dict[str, float]]
BASELINES = ("plain", "plain-fused")
PEERS = ("fit", "pyro-example", "pythae")  # --routes; each may time more than one contender
EXTRA_PEERS = ("pyro-example-dataloader",)
CONTENDERS = {  # row name: what it times
    "plain": "plain PyTorch, default Adam",
    "plain-fused": "plain PyTorch, fused Adam",
    "fit": "pyrovae fit (training loop)",
    "fit-call": "pyrovae fit, whole call",
    "pyro-example": "Pyro's examples/vae loop",
    "pyro-example-dataloader": "Pyro's examples/vae loop, with its DataLoader",
    "pythae": "Pythae 0.1.2 (train_step)",
    "pythae-call": "Pythae 0.1.2, trainer + train()",
}


# --- Pyro's examples/vae/vae.py, reproduced (see the module docstring for what was kept) ---

class ExampleEncoder(nn.Module):
    """q(z|x): 784 → hidden (softplus) → a location and, through ``exp``, a scale."""

    def __init__(self, z_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(X_DIM, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.reshape(-1, X_DIM)  # (B, 784)
        hidden = self.softplus(self.fc1(x))  # (B, hidden)
        return self.fc21(hidden), torch.exp(self.fc22(hidden))  # each (B, z)


class ExampleDecoder(nn.Module):
    """p(x|z): z → hidden (softplus) → 784 Bernoulli probabilities (sigmoid)."""

    def __init__(self, z_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, X_DIM)
        self.softplus = nn.Softplus()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = self.softplus(self.fc1(z))  # (B, hidden)
        return torch.sigmoid(self.fc21(hidden))  # (B, 784)


class ExampleVAE(nn.Module):
    """The example's model/guide pair around :class:`ExampleEncoder` and :class:`ExampleDecoder`."""

    def __init__(self, z_dim: int = Z_DIM, hidden_dim: int = HIDDEN) -> None:
        super().__init__()
        self.encoder = ExampleEncoder(z_dim, hidden_dim)
        self.decoder = ExampleDecoder(z_dim, hidden_dim)
        self.z_dim = z_dim

    def model(self, x: torch.Tensor) -> torch.Tensor:
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = torch.zeros(x.shape[0], self.z_dim, dtype=x.dtype, device=x.device)  # (B, z)
            z_scale = torch.ones(x.shape[0], self.z_dim, dtype=x.dtype, device=x.device)  # (B, z)
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)  # (B, 784)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1), obs=x.reshape(-1, X_DIM))
            return loc_img

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)  # each (B, z)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


def _example_svi(device: torch.device, seed: int) -> SVI:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = ExampleVAE().to(device)
    return SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=Trace_ELBO())


def run_pyro_example(x: torch.Tensor, batch_size: int, device: torch.device, seed: int) -> dict[str, float]:
    """One epoch of the example's loop over the in-memory tensors (no DataLoader)."""
    svi = _example_svi(device, seed)
    flat = x.flatten(1)  # (N, 784), a view
    ts.sync(device)
    t0 = time.perf_counter()
    epoch_loss = 0.0
    perm = torch.randperm(len(flat), device=device)
    for lo in range(0, len(flat), batch_size):
        xb = torch.bernoulli(flat[perm[lo: lo + batch_size]])  # (B, 784)
        epoch_loss += svi.step(xb)
    ts.sync(device)
    return {"pyro-example": time.perf_counter() - t0}


def run_pyro_example_dataloader(x: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device,
                                seed: int) -> dict[str, float]:
    """One epoch of the example's loop with its ``DataLoader`` (per-item fetch and collation)."""
    svi = _example_svi(device, seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.flatten(1), labels), batch_size=batch_size,
                                         shuffle=True, num_workers=0, pin_memory=False)
    ts.sync(device)
    t0 = time.perf_counter()
    epoch_loss = 0.0
    for xb, _ in loader:
        epoch_loss += svi.step(torch.bernoulli(xb))  # xb (B, 784)
    ts.sync(device)
    return {"pyro-example-dataloader": time.perf_counter() - t0}


# --- pyrovae fit, through train_speed.run_fit ---

def run_fit(x: torch.Tensor, batch_size: int, device: torch.device, seed: int) -> dict[str, float]:
    """``fit-call``: train_speed's whole-call time; ``fit``: the loop time from the same call's history."""
    whole = ts.run_fit(x, batch_size, device, seed)
    return {"fit": ts.last_history.seconds[0], "fit-call": whole}


# --- Pythae ---

def pythae_missing() -> str | None:
    """Why Pythae cannot run here, or ``None`` when it can."""
    if importlib.util.find_spec("pythae") is None:
        return ("pythae is not installed; install the optional benchmark extra with pip install -e '.[bench]' "
                "from the repository root (or pip install pythae==0.1.2)")
    try:
        import pythae.trainers  # noqa: F401
    except Exception as e:  # a broken install must not stop the other contenders
        return f"pythae is installed but does not import: {type(e).__name__}: {e}"
    return None


def _pythae_networks() -> tuple[nn.Module, nn.Module]:
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.fc = nn.Linear(X_DIM, HIDDEN)
            self.embedding = nn.Linear(HIDDEN, Z_DIM)
            self.log_var = nn.Linear(HIDDEN, Z_DIM)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = nn.functional.softplus(self.fc(x.reshape(x.shape[0], -1)))  # (B, hidden)
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))  # each (B, z)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.fc = nn.Linear(Z_DIM, HIDDEN)
            self.out = nn.Linear(HIDDEN, X_DIM)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            h = nn.functional.softplus(self.fc(z))  # (B, hidden)
            return ModelOutput(reconstruction=torch.sigmoid(self.out(h)))  # (B, 784) probabilities

    return Encoder(), Decoder()


def run_pythae(x: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device,
               seed: int) -> dict[str, float]:
    """``pythae``: the trainer's ``train_step``; ``pythae-call``: the trainer built and ``train()`` run."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    torch.manual_seed(seed)
    encoder, decoder = _pythae_networks()
    model = VAE(VAEConfig(input_dim=tuple(x.shape[1:]), latent_dim=Z_DIM, reconstruction_loss="bce"),
                encoder=encoder, decoder=decoder)
    data = BaseDataset(binarize(x, "static", seed), labels)  # one draw: the trainer takes a fixed data set
    with tempfile.TemporaryDirectory() as out:
        config = BaseTrainerConfig(output_dir=out, num_epochs=1, learning_rate=1e-3, optimizer_cls="Adam",
                                   per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
                                   steps_saving=None, seed=seed, no_cuda=device.type != "cuda")
        loop: list[float] = []
        ts.sync(device)
        t0 = time.perf_counter()
        trainer = BaseTrainer(model=model, train_dataset=data, training_config=config)
        train_step = trainer.train_step

        def timed_train_step(epoch: int) -> float:
            ts.sync(device)
            start = time.perf_counter()
            loss = train_step(epoch)
            ts.sync(device)
            loop.append(time.perf_counter() - start)
            return loss

        trainer.train_step = timed_train_step
        trainer.train()
        ts.sync(device)
        whole = time.perf_counter() - t0
    return {"pythae": loop[0], "pythae-call": whole}


# --- the measurement and its report ---

def make_runs(x: torch.Tensor, labels: torch.Tensor, device: torch.device) -> dict[str, Run]:
    """Every route as ``run(batch_size, seed) -> {contender: epoch seconds}`` on images ``x`` and ``labels``."""
    return {
        "plain": lambda b, s: {"plain": ts.run_plain(x, b, device, s)},
        "plain-fused": lambda b, s: {"plain-fused": ts.run_plain(x, b, device, s, fused=True)},
        "fit": lambda b, s: run_fit(x, b, device, s),
        "pyro-example": lambda b, s: run_pyro_example(x, b, device, s),
        "pyro-example-dataloader": lambda b, s: run_pyro_example_dataloader(x, labels, b, device, s),
        "pythae": lambda b, s: run_pythae(x, labels, b, device, s),
    }


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = list(dict.fromkeys(r for r in args.routes.split(",") if r))  # in order, once each
    unknown = sorted(set(chosen) - set(PEERS + EXTRA_PEERS))
    if unknown:
        raise SystemExit(f"--routes names unknown peers {unknown}; choose from {list(PEERS + EXTRA_PEERS)} "
                         "(plain and plain-fused always run)")
    device = torch.device(args.device)
    train, _ = load_mnist()
    x = (train.images[: args.subset] if args.subset else train.images).to(device)  # (N, 1, 28, 28)
    labels = (train.labels[: args.subset] if args.subset else train.labels).to(device)  # (N,)
    if x[0].numel() != X_DIM:
        raise SystemExit(f"peers.py trains on 28x28 MNIST ({X_DIM} pixels); got images of shape {tuple(x.shape[1:])}")
    runs = make_runs(x, labels, device)
    warm = make_runs(x[: args.warmup], labels[: args.warmup], device) if args.warmup else {}
    skipped = {}
    if "pythae" in chosen and (why := pythae_missing()):
        print(f"skipped pythae and pythae-call: {why}", file=sys.stderr, flush=True)
        skipped = {"pythae": why}
        chosen.remove("pythae")
    order = [*BASELINES, *chosen]
    report = {
        "machine": {"platform": platform.platform(), "processor": ts._cpu_name(), "device": str(device),
                    "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "threads": torch.get_num_threads(), "torch": torch.__version__, "pyro": pyro.__version__,
                    "pythae": _version("pythae") if not skipped else None, "python": sys.version.split()[0]},
        "command": " ".join(sys.argv),
        "n": len(x),
        "warmup_images": min(args.warmup, len(x)),
        "contenders": {},
        "skipped": skipped,
        "load_before": ts.load_average(),
        "results": {},
    }
    for b in args.batch_sizes:
        for r in order if warm else ():  # a short untimed epoch of every route: none pays the process's first steps
            warm[r](b, 0)
        times: dict[str, list[float]] = {}
        for rep in range(args.reps):
            for r in order if rep % 2 == 0 else order[::-1]:
                for name, seconds in runs[r](b, rep).items():
                    times.setdefault(name, []).append(seconds)
                    if not args.json_only:
                        print(f"batch {b} rep {rep + 1} {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
        plain, fused = min(times["plain"]), min(times["plain-fused"])
        report["results"][str(b)] = {
            name: {"seconds": t, "min_s": min(t), "median_s": statistics.median(t), "ratio_plain": min(t) / plain,
                   "ratio_fused": min(t) / fused} for name, t in times.items()}
    names = report["results"][str(args.batch_sizes[0])]
    report["contenders"] = {name: CONTENDERS[name] for name in CONTENDERS if name in names}
    report["load_after"] = ts.load_average()
    return report


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def format_table(report: dict) -> str:
    m = report["machine"]
    lines = [f"device {m['device']} ({m['processor']}, {m['threads']} threads), N={report['n']}, torch {m['torch']}, "
             f"pyro {m['pyro']}, pythae {m['pythae']}, load {report['load_before']} -> {report['load_after']}"]
    batches = list(report["results"])
    for key, title in (("ratio_plain", "epoch time / plain loop with default Adam (min over reps)"),
                       ("ratio_fused", "epoch time / plain loop with fused Adam (min over reps)"),
                       ("min_s", "epoch time in seconds (min over reps)")):
        lines += ["", title, "", "| contender | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---" * (len(batches) + 1) + "|"]
        fmt = "{:.2f}" if key == "min_s" else "{:.3f}"
        for name, label in report["contenders"].items():
            cells = [fmt.format(report["results"][b][name][key]) for b in batches]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for route, why in report["skipped"].items():
        lines.append(f"\nskipped {route} ({', '.join(n for n in CONTENDERS if n.startswith(route))}): {why}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[100, 256],
                   help="comma-separated batch sizes (default 100,256)")
    p.add_argument("--reps", type=int, default=3, help="epochs per contender and batch size (default %(default)s)")
    p.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all 60k)")
    p.add_argument("--routes", default=",".join(PEERS),
                   help=f"comma-separated peers from {PEERS + EXTRA_PEERS}, timed against plain and plain-fused, "
                        "which always run (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1000,
                   help="images of an untimed epoch of every route before each batch size (0: none; "
                        "default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; default %(default)s)")
    p.add_argument("--json", nargs="?", const="-", default=None, help="write the report as JSON to PATH (or stdout)")
    args = p.parse_args(argv)
    if args.reps < 1 or args.warmup < 0 or any(b < 1 for b in args.batch_sizes):
        p.error("--reps and every --batch-sizes value must be at least 1, and --warmup at least 0")
    args.json_only = args.json == "-"
    return args


if __name__ == "__main__":
    args = parse_args()
    ts.emit(main(args), args, format_table)
