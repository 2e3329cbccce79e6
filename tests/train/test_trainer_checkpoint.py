"""Checkpoint writing and reading under failure: writers killed with SIGKILL mid-write, long
names, stale temporary files, a full disk, and corrupt or malicious payloads."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pyrovae._util import files
from pyrovae.models import build_vae
from pyrovae.train import CheckpointError, fit, load_checkpoint
from pyrovae.train import checkpoint as ckpt

FILES_PY = Path(files.__file__)


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".tmp"))


def tiny_vae():
    torch.manual_seed(0)
    return build_vae(x_shape=(12,), z_dim=2, hidden=(8,))


def written(tmp_path: Path) -> Path:
    path = tmp_path / "c.pt"
    x = (torch.rand(40, 12, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    fit(tiny_vae(), x, epochs=1, batch_size=10, binarize=None, device="cpu", progress=False, checkpoint=path)
    return path


# -- writing -----------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import hashlib, importlib.util, os, sys
    spec = importlib.util.spec_from_file_location("files", sys.argv[1])
    files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(files)  # the module alone: no torch import, so the loop starts at once
    n = 0
    while True:
        n += 1
        body = (str(n) * 1_000_000).encode()[:6_000_000]
        files.atomic_write_bytes(sys.argv[2], hashlib.sha256(body).hexdigest().encode() + b"\\n" + body)
        print(n, flush=True)
""")


def intact(path: Path) -> bool:
    digest, _, body = path.read_bytes().partition(b"\n")
    return hashlib.sha256(body).hexdigest().encode() == digest


def test_writers_killed_mid_write_never_tear_the_file_and_their_temporaries_are_cleaned(tmp_path):
    target = tmp_path / "model.ckpt"
    kills, after_first = 0, 0
    for i in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(FILES_PY), str(target)], stdout=subprocess.PIPE,
                                text=True)
        proc.stdout.readline()  # at least one complete write has happened
        time.sleep(0.01 + 0.013 * i)  # kill at different points of the next writes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        assert intact(target), f"kill {i + 1}: the target is torn"
        after_first += bool(temporaries(tmp_path))
    assert kills == 12
    assert after_first >= 1  # some kills did land mid-write (their temporaries are still there)
    old = time.time() - 2 * files.STALE_SECONDS
    for tmp in temporaries(tmp_path):
        os.utime(tmp, (old, old))  # as if the kills were minutes ago
    files.atomic_write_bytes(target, b"x")  # the next write cleans up after the dead writers
    assert temporaries(tmp_path) == [] and target.read_bytes() == b"x"


def _checkpoint_writer(path: Path, vae, first_epoch: int, report: int) -> None:
    # a forked child: write checkpoints of epochs first_epoch, first_epoch + 1, ... until killed,
    # reporting each epoch once its write is complete (4 MB each, so that kills land mid-write)
    blob = torch.randn(1_000_000, generator=torch.Generator().manual_seed(first_epoch))
    epoch = first_epoch
    while True:
        ckpt.save_checkpoint(path, vae, epoch=epoch, extra={"blob": blob})
        os.write(report, f"{epoch}\n".encode())
        epoch += 1


def _reported(fd: int) -> list[int]:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return [int(line) for line in data.split()]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_checkpoint_writers_killed_at_random_moments_leave_the_old_or_the_new_checkpoint(tmp_path):
    # kill -9, repeated, of processes writing real checkpoints (torch.save payloads): after every
    # kill the file loads and is the last write that completed or the one in flight, never torn
    path, rng, vae = tmp_path / "c.pt", random.Random(0), tiny_vae()
    ckpt.save_checkpoint(path, vae, epoch=0)
    last = 0
    for _ in range(8):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns: it is killed
            try:
                os.close(r)
                _checkpoint_writer(path, vae, last + 1, w)
            finally:
                os._exit(1)
        os.close(w)
        first = os.read(r, 64)  # at least one complete write
        time.sleep(rng.uniform(0.0, 0.05))  # then a random moment of the next ones
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        done = [int(v) for v in first.split()] + _reported(r)
        os.close(r)
        epoch = ckpt.read_checkpoint(path)["epoch"]  # loads: never torn
        assert epoch in (done[-1], done[-1] + 1), (epoch, done)  # the last completed write, or the one renamed
        loaded, _ = load_checkpoint(path, tiny_vae())
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), vae.state_dict().values()))
        last = epoch
    left = temporaries(tmp_path)
    assert left, "no kill landed mid-write: the writes are too short for this test"
    old = time.time() - 2 * files.STALE_SECONDS
    for tmp in left:
        os.utime(tmp, (old, old))  # as if the kills were minutes ago
    ckpt.save_checkpoint(path, vae, epoch=last + 1)  # the next write removes every dead writer's temporary
    assert temporaries(tmp_path) == [] and ckpt.read_checkpoint(path)["epoch"] == last + 1


def test_a_255_byte_name_works_and_no_temporary_is_left(tmp_path):
    name = "é" * 120 + "x" * 12 + ".pt"  # 255 bytes in UTF-8
    assert len(name.encode()) == 255
    path = tmp_path / name
    ckpt.save_checkpoint(path, tiny_vae(), epoch=3)
    assert ckpt.read_checkpoint(path)["epoch"] == 3
    assert temporaries(tmp_path) == []


def test_a_failed_write_removes_its_temporary_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    files.atomic_write_bytes(path, b"old")

    def fails(tmp):
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(path, fails)
    assert path.read_bytes() == b"old" and temporaries(tmp_path) == []


def test_only_stale_temporaries_are_removed(tmp_path):
    path = tmp_path / "c.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)
    old = time.time() - 3600
    stale = tmp_path / f".c.pt.{dead_pid}.0badc0de.tmp"
    recent = tmp_path / f".c.pt.{dead_pid}.00000001.tmp"  # a dead writer, but too recent to be sure
    live = tmp_path / f".c.pt.{os.getpid()}.00000002.tmp"  # this very process: alive
    other = tmp_path / f".d.pt.{dead_pid}.00000003.tmp"  # another target's
    for p in (stale, recent, live, other):
        p.write_bytes(b"partial")
    for p in (stale, live, other):
        os.utime(p, (old, old))
    locked = tmp_path / f".c.pt.{dead_pid}.00000004.tmp"  # held by a live writer (its lock), whatever its pid says
    locked.write_bytes(b"partial")
    os.utime(locked, (old, old))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, sys, time
        f = open({str(locked)!r}, "rb"); fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert files.remove_stale_temporaries(path) == [stale]
    finally:
        holder.kill()
        holder.wait()
    assert {p.name for p in temporaries(tmp_path)} == {recent.name, live.name, other.name, locked.name}


def test_a_full_disk_is_a_clear_error_and_the_old_file_survives(tmp_path, monkeypatch):
    path = written(tmp_path)
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)  # delayed allocation reports ENOSPC at fsync
    with pytest.raises(files.DiskFullError, match=r"the disk is full: no space left to write .*c\.pt"):
        ckpt.save_checkpoint(path, tiny_vae(), epoch=9)
    assert path.read_bytes() == before and temporaries(tmp_path) == []


def test_fit_into_a_full_tmpfs_says_the_disk_is_full_and_keeps_the_last_checkpoint(small_tmpfs):
    path = small_tmpfs / "c.pt"
    x = (torch.rand(40, 12, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    fit(tiny_vae(), x, epochs=1, batch_size=10, binarize=None, device="cpu", progress=False, checkpoint=path)
    before = path.read_bytes()
    torch.manual_seed(0)
    big = build_vae(x_shape=(12,), z_dim=2, hidden=(2000,))  # about 100k parameters: 1.2 MB with Adam's state
    with pytest.raises(files.DiskFullError, match=r"the disk is full: no space left to write .*c\.pt.*free some space"):
        fit(big, x, epochs=1, batch_size=10, binarize=None, device="cpu", progress=False, checkpoint=path)
    assert path.read_bytes() == before and ckpt.read_checkpoint(path)["epoch"] == 1
    assert temporaries(small_tmpfs) == []


def test_a_really_full_tmpfs_is_a_clear_error(small_tmpfs):
    path = small_tmpfs / "f.bin"
    files.atomic_write_bytes(path, b"old")
    with pytest.raises(files.DiskFullError, match="the disk is full"):
        files.atomic_write_bytes(path, os.urandom(1 << 20))  # 1 MiB into 256 KiB
    assert path.read_bytes() == b"old" and temporaries(small_tmpfs) == []


# -- reading -----------------------------------------------------------------------------------
def _mutated(path: Path, change) -> Path:
    payload = torch.load(path, weights_only=True)
    change(payload)
    bad = path.with_name("bad.pt")
    torch.save(payload, bad)
    return bad


def _set(key, value):
    return lambda p: p.__setitem__(key, value)


def _config(key, value):
    return lambda p: p["config"].__setitem__(key, value)


MALFORMED = [
    ("version", _set("version", "1"), "field 'version' must be an integer"),
    ("future version", _set("version", 99), "field 'version' must be an integer from 1 to 1"),
    ("epoch negative", _set("epoch", -1), "field 'epoch' must be an integer >= 0"),
    ("epoch missing", lambda p: p.pop("epoch"), "field 'epoch' is missing"),
    ("model_state values", _set("model_state", {"w": [1.0]}), "field 'model_state' must map names to tensors"),
    ("model_state list", _set("model_state", [torch.zeros(1)]), "field 'model_state' must map names to tensors"),
    ("param_store", _set("param_store", {"w": "x"}), "field 'param_store' must map names to tensors"),
    ("config kind", _set("config", "mlp"), "field 'config' must be a dict"),
    ("optimizer kind", _set("optimizer", {"kind": "evil", "state": {}}), "field 'optimizer' must be None or"),
    ("optimizer state", _set("optimizer", {"kind": "torch", "state": [1]}), "field 'optimizer' must be None or"),
    ("history kind", _set("history", {"epoch": 3}), "field 'history' must map names to lists"),
    ("history lengths", _set("history", {"epoch": [1], "train_elbo": []}), "field 'history' has lists of different"),
    (
        "long list",
        _config("extra", {"stats": [0.0] * (2**20 + 1)}),
        r"field 'config.extra.stats' has 1048577 items \(at most 1048576\)",
    ),
    ("huge int", _config("z_dim", 2**40), "field 'config.z_dim' is 1099511627776, out of range"),
    ("odd value", _config("extra", {"f": torch.zeros(1)}), "field 'config.extra.f' must be a number"),
    ("deep", _config("extra", {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}), "nested deeper than 6 levels"),
    ("shapes kind", _set("shapes", [12]), "field 'shapes' must be None or a dict"),
    ("shapes keys", _set("shapes", {"x_shape": [12], "evil": 1}), "field 'shapes' must be None or a dict"),
    ("x_shape zero", _set("shapes", {"x_shape": [0], "z_dim": 2}), r"field 'shapes.x_shape' must be None or a list"),
    ("x_shape huge", _set("shapes", {"x_shape": [2**16] * 3, "z_dim": 2}), r"of product at most 2147483647"),
    ("x_shape text", _set("shapes", {"x_shape": "12", "z_dim": 2}), r"field 'shapes.x_shape' must be None or a list"),
    ("z_dim bool", _set("shapes", {"x_shape": [12], "z_dim": True}), r"field 'shapes.z_dim' must be None or a"),
]


@pytest.mark.parametrize("what, change, match", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_every_malformed_field_is_a_checkpoint_error_naming_it(tmp_path, what, change, match):
    bad = _mutated(written(tmp_path), change)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(bad)


def test_a_crafted_config_is_refused_before_any_network_is_built(tmp_path, monkeypatch):
    built, real_build = [], ckpt.build_vae

    def watched(*args, **kwargs):  # what the loader builds, and where (the size check builds on "meta")
        vae = real_build(*args, **kwargs)
        built.append(next(vae.parameters()).device.type)
        return vae

    monkeypatch.setattr(ckpt, "build_vae", watched)
    # 2**20 x 2**20 hidden layers: 4 TB of weights in a file that holds a few hundred numbers
    bad = _mutated(written(tmp_path), _config("hidden", [2**20, 2**20]))
    with pytest.raises(CheckpointError, match=r"field 'config' describes a model of up to .* parameters, but the file "
                                              r"holds .*: refusing to build it"):
        load_checkpoint(bad)
    bad = _mutated(written(tmp_path), _config("z_dim", "two"))
    with pytest.raises(CheckpointError, match=r"field 'config' does not describe a VAE"):
        load_checkpoint(bad)
    assert "cpu" not in built  # no real network was built
    assert load_checkpoint(written(tmp_path))[0] is not None and built[-1] == "cpu"  # a sound one still loads


def test_a_pickle_that_runs_code_is_refused_and_does_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": ckpt.FORMAT, "x": Evil()}))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_resuming_with_the_other_kind_of_optimiser_names_the_field(tmp_path):
    from pyro.optim import Adam

    path = written(tmp_path)  # a torch Adam state
    x = (torch.rand(40, 12, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with pytest.raises(CheckpointError, match=r"field 'optimizer' holds a torch optimiser state, but this run uses a "
                                              r"pyro optimiser"):
        fit(tiny_vae(), x, epochs=2, batch_size=10, binarize=None, optim=Adam({"lr": 1e-3}), device="cpu",
            progress=False, checkpoint=path, resume=True)
    sgd_state = _mutated(path, lambda p: p["optimizer"]["state"].__setitem__("param_groups", [{"params": [0]}]))
    with pytest.raises(CheckpointError, match=r"field 'optimizer' does not fit this optimiser"):
        fit(tiny_vae(), x, epochs=2, batch_size=10, binarize=None, device="cpu", progress=False,
            checkpoint=sgd_state, resume=True)
