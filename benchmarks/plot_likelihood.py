"""Figure and markdown table of the ``benchmarks/likelihood.py`` results.

Reads ``benchmarks/results/likelihood_*.json``, draws every run's test -ELBO per epoch with
its final importance-sampled NLL as a star and the published marks as dashed lines, and
prints the README's table rows::

    python benchmarks/plot_likelihood.py --out docs/figures/likelihood_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pyrovae import plots

#: Published NLLs drawn as reference lines (Burda et al. 2016, dynamic binarisation).
REFERENCES = {
    "Burda VAE, 3280 epochs: 86.76": 86.76,
    "Burda IWAE k=50: 84.78": 84.78,
    "target for the plain VAE: 88": 88.0,
}


def load(results: Path, names: list[str] | None = None) -> dict[str, dict]:
    """``config name -> record`` for each result file with a training history (optionally only
    ``names``); runs still training or evaluating are included, without an NLL."""
    out = {}
    for path in sorted(results.glob("likelihood_*.json")):
        rec = json.loads(path.read_text())
        key = path.stem.removeprefix("likelihood_")
        if rec.get("history") and (names is None or key in names):
            out[key] = rec
    return out


def table_row(key: str, rec: dict) -> str:
    """One markdown row: recipe, epochs and time, NLL ± s.e., test points, published (a recipe
    without a published number, such as ``default``, shows the record's note)."""
    se = rec.get("nll_se_data") or 0.0
    minutes = rec["train_seconds"] / 60
    epochs = f"{rec['init_from']['epochs']} + {rec['epochs']}" if "init_from" in rec else str(rec["epochs"])
    pub = rec["published"]
    published = f"{pub['nll']} ({pub['source']})" if pub.get("nll") is not None else pub.get("source", "")
    return (f"| `{key}` | {epochs} ({minutes:.0f} min) | **{rec['nll']:.2f}** ± {se:.2f} "
            f"| {rec['eval']['test_points']} | {published} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--names", nargs="*", default=None, help="config names to include (default: all finished)")
    p.add_argument("--out", type=Path, default=Path("docs/figures/likelihood_curves.png"))
    args = p.parse_args(argv)
    records = load(args.results, args.names)
    if not records:
        raise SystemExit(f"no finished likelihood_*.json in {args.results}")
    curves, final = {}, {}
    for k, r in records.items():
        start = r.get("init_from", {}).get("epochs", 0)  # a fine-tune continues its base run's epochs
        n_test = r["eval"]["test_points"]
        label = k if n_test >= 10000 else f"{k} (NLL on {n_test} test images)"
        curves[label] = ([start + e for e in r["history"]["epoch"]], [-v for v in r["history"]["test_elbo"]])
        if r.get("status") == "done":
            final[label] = (start + r["epochs"], r["nll"])
    plots.learning_curves(curves, final, REFERENCES, path=args.out)
    print("| config | epochs (train time) | NLL, nats ± s.e. over images | test images | published |")
    print("|---|---|---|---|---|")
    for k, r in records.items():
        print(
            table_row(k, r) if r.get("status") == "done" else f"| `{k}` | {r['epochs']} so far | ({r['status']}) | | |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
