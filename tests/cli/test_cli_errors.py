"""The command line never loses work: every user mistake is one line on stderr and exit code 2
(no traceback), output folders are checked before training, a folder that holds a checkpoint
is not overwritten by accident, two runs cannot write into one folder, and Ctrl-C says what
it kept and how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrovae.cli import main
from pyrovae.cli.errors import UsageError
from pyrovae.cli.outdir import LOCK_NAME, RunLock, check_file, check_folder

TINY = ["--subset", "200", "--epochs", "1", "--hidden", "8", "--z-dim", "2", "--no-progress", "--device", "cpu"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run ``main`` in-process as the console script would: (exit code, stderr)."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit from parse_args
        code = e.code
    return code, capsys.readouterr().err


def _assert_usage_error(code: int, err: str, match: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyrovae: error:"), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("argv, match", [
    (["train", "--subset", "0"], "--subset: expected a positive integer, got '0'"),
    (["train", "--subset", "-5"], "--subset: expected a positive integer, got '-5'"),
    (["train", "--epochs", "0"], "--epochs: epochs must be a positive integer"),
    (["train", "--batch-size", "0"], "--batch-size: batch_size must be a positive integer"),
    (["train", "--z-dim", "0"], "--z-dim: z_dim must be a positive integer"),
    (["train", "--lr", "-1"], "--lr: lr must be a number >= 0"),
    (["train", "--particles", "0"], "--particles: num_particles must be >= 1"),
    (["train", "--num-components", "0"], "--num-components: num_components must be a positive integer"),
    (["train", "--hidden", "512,x"], "--hidden takes comma-separated integers"),
    (["train", "--epochs", "ten"], "invalid int value: 'ten'"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--prior", "cauchy"], "invalid choice: 'cauchy'"),
    (["train", "--recipe", "nope"], "invalid choice: 'nope'"),
    (["train", "--resume", "--overwrite"], "--resume and --overwrite contradict"),
    (["recipes", "nope"], "unknown recipe(s) nope"),
    (["evaluate", "missing.pt"], "no checkpoint at missing.pt"),
    (["evaluate", "missing.pt", "--samples", "1"], "--samples and --n must be >= 2"),
    (["inspect", "missing.pt", "--out", "figs", "--n", "5"], "--n must be >= 20"),
    (["kl-compare", "--methods", "vi"], "invalid choice: 'vi'"),
    (["kl-compare", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["nope"], "invalid choice: 'nope'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_every_command_line_mistake_is_one_line_and_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _assert_usage_error(*_cli(argv, capsys), match)


def test_cuda_without_a_gpu_is_refused_up_front(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _assert_usage_error(*_cli(["train", "--device", "cuda"], capsys), "'cuda' was asked for but this machine has no")


def test_output_and_data_paths_are_checked_before_training(capsys, tmp_path, a_file):
    _assert_usage_error(*_cli(["train", "--out", str(a_file)], capsys), "is a file; it must be a folder")
    _assert_usage_error(*_cli(["train", "--out", str(a_file / "run")], capsys), "is a file, not a folder")
    _assert_usage_error(*_cli(["train", "--out", str(tmp_path / "run"), "--data", str(a_file)], capsys),
                        "--data")
    _assert_usage_error(*_cli(["inspect", "x.pt", "--out", str(a_file)], capsys), "is a file; it must be a folder")
    assert not (tmp_path / "run").exists()  # nothing was created for a refused run


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only folder (/sys)")
def test_unwritable_places_are_refused(capsys):
    with pytest.raises(UsageError, match="/sys is not writable; choose a folder"):
        check_folder(Path("/sys/pyrovae-run"))
    with pytest.raises(UsageError, match=r"cannot write /sys/evaluation\.json: /sys is not writable; pass --out FILE"):
        check_file(Path("/sys/evaluation.json"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_evaluate_next_to_a_read_only_checkpoint_asks_for_out(tmp_path, capsys):
    from pyrovae.models import build_vae
    from pyrovae.train.checkpoint import save_checkpoint

    folder = tmp_path / "ro"
    save_checkpoint(folder / "checkpoint.pt", build_vae(z_dim=2, hidden=(8,)))
    folder.chmod(0o555)
    try:
        _assert_usage_error(*_cli(["evaluate", str(folder / "checkpoint.pt")], capsys), "pass --out FILE")
    finally:
        folder.chmod(0o755)


def test_evaluate_writes_into_an_out_folder(tmp_path, capsys, mnist):
    from pyrovae.models import build_vae
    from pyrovae.train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run" / "checkpoint.pt", build_vae(z_dim=2, hidden=(8,)))
    (tmp_path / "elsewhere").mkdir()
    assert main(["evaluate", str(tmp_path / "run"), "--samples", "4", "--n", "10", "--out",
                 str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "evaluation.json").is_file()


def test_a_folder_with_a_checkpoint_is_not_overwritten_by_accident(tmp_path, capsys, mnist):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--out", out]) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    _assert_usage_error(*_cli(["train", *TINY, "--out", out], capsys), "already holds a checkpoint of this "
                        "configuration (epoch 1 of 1); pass --resume to continue it or --overwrite")
    _assert_usage_error(*_cli(["train", *TINY, "--z-dim", "3", "--out", out], capsys),
                        "holds a checkpoint of another configuration (z_dim: 2 there, 3 here)")
    _assert_usage_error(*_cli(["train", *TINY, "--z-dim", "3", "--out", out, "--resume"], capsys),
                        "another configuration")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before  # untouched by the refusals
    assert main(["train", *TINY, "--epochs", "2", "--out", out, "--resume"]) == 0
    assert main(["train", *TINY, "--z-dim", "3", "--out", out, "--overwrite"]) == 0
    from pyrovae.train.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["z_dim"] == 3


def test_a_resumed_run_says_where_it_resumes(tmp_path, capsys, mnist):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--out", out]) == 0
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "2", "--out", out, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {out}/checkpoint.pt from epoch 1" in printed
    assert "after 2 epochs" in printed


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\n")
    with RunLock(tmp_path) as lock:
        assert lock.took_over == dead.pid
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released


def test_a_live_owner_keeps_its_lock(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{sleeper.pid}\n")
        with pytest.raises(UsageError, match=f"another pyrovae run \\(PID {sleeper.pid}\\) is writing into"):
            RunLock(tmp_path).__enter__()
    finally:
        sleeper.kill()
        sleeper.wait()


def _start_long_run(out: Path) -> subprocess.Popen:
    # SIGINT at its default in the child: a shell that starts pytest in the background (``cmd &``)
    # makes its children ignore SIGINT, and then there would be no Ctrl-C to test
    return subprocess.Popen([sys.executable, "-m", "pyrovae", "train", "--subset", "3000", "--epochs", "200",
                             "--hidden", "64", "--out", str(out), "--no-progress", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not (path.exists() and path.stat().st_size > 0):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not appear in {timeout}s")
        time.sleep(0.1)


def test_two_concurrent_runs_and_ctrl_c(tmp_path, mnist):
    out = tmp_path / "run"
    first = _start_long_run(out)
    try:
        _wait_for(out / LOCK_NAME, first)
        second = subprocess.run([sys.executable, "-m", "pyrovae", "train", "--subset", "3000", "--epochs", "200",
                                 "--hidden", "64", "--out", str(out), "--no-progress", "--resume"],
                                capture_output=True, text=True, env=ENV, timeout=120, check=False)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith(f"pyrovae: error: another pyrovae run (PID {first.pid}) is writing into")
        assert "Traceback" not in second.stderr
        # Ctrl-C after the first epoch's checkpoint appears
        _wait_for(out / "checkpoint.pt", first)
        time.sleep(0.2)
        first.send_signal(signal.SIGINT)
        _stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    from pyrovae.train.checkpoint import read_checkpoint

    kept = read_checkpoint(out / "checkpoint.pt")["epoch"]
    assert kept >= 1
    assert lines[0] == (f"pyrovae: interrupted; {out}/checkpoint.pt keeps epoch {kept} of 200. Resume with: "
                        f"pyrovae train --subset 3000 --epochs 200 --hidden 64 --out {out} --no-progress --device cpu "
                        "--resume")
    assert (out / LOCK_NAME).read_text() == ""  # the lock was released


def test_a_full_disk_during_training_is_one_line_and_keeps_nothing_half_written(small_tmpfs, capsys, mnist):
    out = small_tmpfs / "run"
    argv = ["train", "--out", str(out), "--subset", "100", "--epochs", "1", "--no-progress", "--device", "cpu"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyrovae: error: the disk is full: no space left to write"), err
    assert "checkpoint.pt" in err[0] and "free some space" in err[0]
    assert not (out / "checkpoint.pt").exists()
    assert not [p for p in out.iterdir() if ".tmp" in p.name], list(out.iterdir())
