"""What `harness history` finds in synthetic nightly histories, and how fast it reads a big one.

    python results/history/experiment.py noise RERUNS...      # measure the noise of real reruns -> noise.json
    python results/history/experiment.py detect [--out DIR]   # 60 nights with two planted changes, 20 without
    python results/history/experiment.py scale DIR            # write 365 nights x 350 cells under DIR

Every history is written as real run records (harness.history.synthetic: copies of results/smoke-tf5's records with
their timings and metric redrawn) and read by the `harness history` command itself. The noise is the one measured
on this machine's reruns (noise.json). On CPU the same seed gives the same metric every night, so a metric drop is
easy to see there: the "metric-noise" variant also moves every run's metric by 1 point (standard deviation) from
night to night, an assumption standing in for GPU kernels' nondeterminism, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from harness import cli
from harness.history import synthetic
from harness.store import history, recordsets

HERE = Path(__file__).resolve().parent
METRIC_NIGHT = 0.01  # the "metric-noise" variant's night-to-night metric noise (assumed, see above)
TEMPLATES = HERE.parent / "smoke-tf5"
SLOW, DROP = "syn-sst2-tiny-bert", "syn-mrpc-tiny-bert"  # the cells changes are planted in
# a slower torch slows every cell; a tokenizer or task bug drops one cell's accuracy
PLANTS = [synthetic.Plant(15, "no cell", "primary", 0.0, {"datasets": "5.3.0"}),  # a change with no effect
          synthetic.Plant(31, "*", "train_step_s", 0.08, {"torch": "2.13.1"}),
          synthetic.Plant(44, DROP, "primary", -0.03, {"transformers": "5.26.0"})]
EXPECTED = {("all cells", "train_step_s", "night-31"), ("all cells", "mfu", "night-31"), (DROP, "primary", "night-44")}
# the same slowdown in one cell only: as sure as that cell's own noise allows
ONE_CELL = [synthetic.Plant(31, SLOW, "train_step_s", 0.08, {"torch": "2.13.1"})]


def measured_noise() -> synthetic.Noise:
    return synthetic.Noise(**json.loads((HERE / "noise.json").read_text())["noise"])


def cmd_noise(args: argparse.Namespace) -> None:
    loaded = history.load(history.nights(args.reruns), index=None)
    noise = synthetic.measure_noise(loaded)
    table = loaded.records
    payload = {"noise": noise.to_dict(), "nights": sorted(set(table["night"])), "records": len(table),
               "cells": sorted(set(table["group"])), "machine": sorted(set(table["device_class"])),
               "env": sorted(set(table["env_key"]))}
    (HERE / "noise.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload, indent=1))


def judged(folder: Path, out: Path) -> dict:
    code = cli.main(["history", str(folder), "--output", str(out), "--no-index"])
    result = json.loads((out / "history.json").read_text())
    result["exit"] = code
    return result


def cmd_detect(args: argparse.Namespace) -> None:
    cells = synthetic.templates(recordsets.load([TEMPLATES]).records)
    base = measured_noise()
    variants = {"measured": base, "metric-noise": dataclasses.replace(base, metric_night=METRIC_NIGHT)}
    report: dict = {"noise": {k: v.to_dict() for k, v in variants.items()}, "planted": [], "noise_only": []}
    with tempfile.TemporaryDirectory() as scratch:
        for name, noise in variants.items():
            folder = Path(scratch) / f"planted-{name}"
            synthetic.write_history(folder, cells, nights=60, seeds=3, noise=noise, plants=PLANTS, rng=1)
            out = Path(args.out) / name if args.out else Path(scratch) / f"out-{name}"
            result = judged(folder, out)
            found = {(c["cell"], c["measure"], c["night"]) for c in result["changes"]}
            report["planted"].append({"noise": name, "found": sorted(found), "missed": sorted(EXPECTED - found),
                                      "false": sorted(found - EXPECTED), "exit": result["exit"],
                                      "changes": result["changes"]})
            folder = Path(scratch) / f"one-cell-{name}"
            synthetic.write_history(folder, cells, nights=60, seeds=3, noise=noise, plants=ONE_CELL, rng=1)
            result = judged(folder, Path(scratch) / f"out-one-{name}")
            report["one_cell"] = report.get("one_cell", []) + [{"noise": name, "exit": result["exit"],
                                                                "changes": result["changes"]}]
            for rng in range(100, 120):
                folder = Path(scratch) / f"noise-{name}-{rng}"
                synthetic.write_history(folder, cells, nights=60, seeds=3, noise=noise, rng=rng)
                result = judged(folder, Path(scratch) / f"out-{name}-{rng}")
                report["noise_only"].append({"noise": name, "rng": rng, "exit": result["exit"],
                                             "confirmed": [c for c in result["changes"] if not c["newest"]],
                                             "watch": [c for c in result["changes"] if c["newest"]]})
    (HERE / "experiment.json").write_text(json.dumps(report, indent=1) + "\n")
    for row in report["planted"]:
        print(f"planted ({row['noise']} noise): found {row['found']}, missed {row['missed']}, "
              f"false {row['false']}, exit {row['exit']}")
    for row in report["one_cell"]:
        print(f"one cell 8 % slower ({row['noise']} noise): "
              f"{[(c['cell'], c['measure'], c['night'], round(c['size'], 3)) for c in row['changes']]}")
    for name in variants:
        runs = [r for r in report["noise_only"] if r["noise"] == name]
        print(f"noise only ({name}): {sum(len(r['confirmed']) for r in runs)} confirmed changes and "
              f"{sum(len(r['watch']) for r in runs)} nights to watch in {len(runs)} histories of 60 nights x "
              f"{len(cells)} cells x 5 measures; exit codes {sorted({r['exit'] for r in runs})}")


def cmd_scale(args: argparse.Namespace) -> None:
    cells = synthetic.templates(recordsets.load([TEMPLATES]).records, copies=-(-args.cells // 6))[:args.cells]
    synthetic.write_history(Path(args.dir), cells, nights=args.nights, seeds=1, noise=measured_noise(), rng=3)
    print(f"{args.nights} nights x {len(cells)} cells under {args.dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    noise = sub.add_parser("noise")
    noise.add_argument("reruns", nargs="+", help="night folders of reruns: one environment, one machine")
    noise.set_defaults(run=cmd_noise)
    detect = sub.add_parser("detect")
    detect.add_argument("--out", help="keep the planted histories' dashboards here")
    detect.set_defaults(run=cmd_detect)
    scale = sub.add_parser("scale")
    scale.add_argument("dir")
    scale.add_argument("--nights", type=int, default=365)
    scale.add_argument("--cells", type=int, default=350)
    scale.set_defaults(run=cmd_scale)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
