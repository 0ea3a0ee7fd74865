"""Committed baselines under results/baselines/ and the glue between records, baselines and compare.py.

Layout (identity in the path; one file per cell, so updating one cell never touches another and concurrent
pytest-xdist workers never write the same file):

    <root>/<tier>/any/<task>-<model>-s<seed>.json                 quality: device-independent, one per seed
    <root>/<tier>/<device_class>/<task>-<model>.throughput.json   throughput: only judged on the same device class

Quality baseline, key by key (BASELINE_VERSION 1):
    schema_version  int   layout version of this file; unknown versions are refused with what to do
    kind            str   "quality"
    tier            str   the suite tier that wrote it ("smoke", "glue", "gpu")
    cell            str   "<task>-<model>-s<seed>"
    written_at      str   UTC ISO-8601 time the baseline was written
    provenance      dict  summary for humans and diffs: seed, preset, device_class, env_key, machine_id, package
                          versions, data source + file sha256s, model weights sha256
    record          dict  the complete run record (harness/record.py, with its own schema_version): final metrics,
                          per-example predictions/labels/idx, eval curve, config, env fingerprint, data/model
                          provenance, timings

Throughput baseline, key by key (BASELINE_VERSION 1):
    schema_version, kind ("throughput"), tier, written_at  as above
    group           str   "<task>-<model>" (throughput does not depend on the seed)
    device_class    str   env.fingerprint()["device_class"] of the machine that measured it
    context         dict  config (batch sizes, max_length, precision), env fingerprint, model provenance, data identity
    train           dict  harness.throughput.TrainBench.result(): step_seconds samples (warm-up excluded), rounds,
                          samples/s, non-padding tokens/s, busy_cores (other processes' CPU use while measuring)
    eval            dict  harness.throughput.EvalBench.result(): batch_seconds samples, samples/s, tokens/s, busy_cores
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import compare
from harness.compare import SeedResult, Verdict
from harness.errors import HarnessError
from harness.results import SchemaError, upgrade, write_json_atomic

BASELINE_VERSION = 1
# update_to_N turns a version N-1 baseline into version N. None yet: version 1 is the first.
MIGRATIONS: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

# Config fields that change what a cell learns: a baseline made with other values is not comparable.
JUDGED_CONFIG = ("preset", "epochs", "train_batch_size", "eval_batch_size", "learning_rate", "weight_decay",
                 "warmup_ratio", "max_length", "max_train_samples", "max_eval_samples", "data_seed",
                 "evals_per_epoch", "precision")
# Data provenance keys that only say where the bytes sit or how they were cached, not which bytes they are.
_DATA_NOISE = ("location", "rows", "tokens", "tokenization_cache_hit", "tokenization_cache_key", "version",
               "fingerprints")
THROUGHPUT_CONFIG = ("train_batch_size", "eval_batch_size", "max_length", "precision")
UPDATE_HINT = "create it with `pytest suites/ --harness-update-baselines` (add the same -m/-k/--harness-* options)"


def group_id(task: str, model: str) -> str:
    return f"{task}-{Path(model).name if '/' in model else model}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ paths and I/O

def quality_path(root: Path, tier: str, cell: str) -> Path:
    return Path(root) / tier / "any" / f"{cell}.json"


def throughput_path(root: Path, tier: str, device_class: str, group: str) -> Path:
    return Path(root) / tier / device_class / f"{group}.throughput.json"


def upgrade_baseline(payload: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Bring a baseline to BASELINE_VERSION (and its embedded record to the record version), or refuse."""
    version = payload.get("schema_version")
    if not isinstance(version, int) or payload.get("kind") not in ("quality", "throughput"):
        raise SchemaError(f"{source} is not a harness baseline (no integer 'schema_version' or no 'kind'). "
                          "Remove it from the baselines folder or re-create it: " + UPDATE_HINT + ".")
    if version > BASELINE_VERSION:
        raise SchemaError(f"{source} has baseline schema_version {version}, newer than this harness reads "
                          f"({BASELINE_VERSION}). Upgrade the harness (git pull; pip install -e .) to read it.")
    while version < BASELINE_VERSION:
        step = MIGRATIONS.get(version + 1)
        if step is None:
            raise SchemaError(f"{source} has baseline schema_version {version} and no migration to {version + 1} "
                              "exists. Re-create it: " + UPDATE_HINT + ".")
        payload = step(payload)
        version = payload["schema_version"] = version + 1
    if payload["kind"] == "quality":
        payload["record"] = upgrade(payload["record"], source=f"{source} (embedded run record)")
    return payload


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The upgraded baseline at `path`, or None when there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path} is not valid JSON ({err}). Restore it from version control (git checkout -- "
                          f"{path}) or re-create it: {UPDATE_HINT}.") from err
    return upgrade_baseline(payload, source=str(path))


def quality_group(root: Path, tier: str, task: str, model: str) -> list[dict[str, Any]]:
    """Every stored seed of one task x model, as run records (sorted by seed)."""
    group = group_id(task, model)
    found = []
    for path in sorted((Path(root) / tier / "any").glob(f"{group}-s*.json")):
        if not path.stem.removeprefix(group + "-s").isdigit():
            continue  # e.g. "syn-mrpc-tiny-bert-s0" must not match a model named "tiny-bert-s0x"
        baseline = read_baseline(path)
        if baseline is not None:
            found.append(baseline["record"])
    return sorted(found, key=lambda r: r["config"]["seed"])


def quality_baseline(record: Mapping[str, Any], *, tier: str) -> dict[str, Any]:
    env, data, model = record["env"], record["data"], record["model"]
    return {
        "schema_version": BASELINE_VERSION, "kind": "quality", "tier": tier, "cell": record["cell"],
        "written_at": now_iso(),
        "provenance": {
            "seed": record["config"]["seed"], "preset": record["config"]["preset"],
            "created_at": record["created_at"], "device_class": env["device_class"], "env_key": env["env_key"],
            "machine_id": env["machine_id"], "packages": env["packages"], "harness": env.get("harness"),
            "data": data_identity(data), "model_weights_sha256": model.get("weights_sha256"),
        },
        "record": dict(record),
    }


def throughput_baseline(measurement: Mapping[str, Any], *, tier: str) -> dict[str, Any]:
    return {"schema_version": BASELINE_VERSION, "kind": "throughput", "tier": tier, "written_at": now_iso(),
            **{k: measurement[k] for k in ("group", "device_class", "context", "train", "eval") if k in measurement}}


def write_baseline(path: Path, payload: Mapping[str, Any]) -> Path:
    return write_json_atomic(Path(path), payload)


# ------------------------------------------------------------------------------------------------ comparability

def data_identity(data: Mapping[str, Any]) -> dict[str, Any]:
    """Which bytes a run read (file hashes, generator hashes or hub revision, subset ids), not where they sat."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DATA_NOISE:
            continue
        if key == "files" and isinstance(value, Mapping):
            value = {name: info.get("sha256") for name, info in value.items()}
        out[key] = value
    return out


def config_differences(baseline: Mapping[str, Any], now: Mapping[str, Any],
                       keys: Iterable[str] = JUDGED_CONFIG) -> list[str]:
    return [f"{k} {baseline.get(k)!r} in the baseline, {now.get(k)!r} now" for k in keys
            if baseline.get(k) != now.get(k)]


def why_not_comparable(baseline: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
    """None when `record` may be judged against `baseline` (two run records of the same cell group)."""
    if record.get("status") != "ok":
        return f"this run failed: {record.get('error')}"
    if baseline["task"].get("version") != record["task"].get("version"):
        return (f"task {record['task']['name']} is version {record['task'].get('version')} now, "
                f"{baseline['task'].get('version')} in the baseline; " + UPDATE_HINT)
    differences = config_differences(baseline["config"], record["config"])
    if differences:
        return "settings differ: " + "; ".join(differences)
    base_data, now_data = data_identity(baseline["data"]), data_identity(record["data"])
    if base_data != now_data:
        changed = sorted(k for k in set(base_data) | set(now_data) if base_data.get(k) != now_data.get(k))
        return f"the data differ from the baseline's ({', '.join(changed)}: other files, rows or subset)"
    return None


def pairable(baseline: Mapping[str, Any], record: Mapping[str, Any]) -> tuple[bool, str | None]:
    """Same checkpoint weights (and seed, matched by the caller) -> per-example comparison is meaningful."""
    base_w, now_w = baseline["model"].get("weights_sha256"), record["model"].get("weights_sha256")
    if base_w and now_w and base_w != now_w:
        return False, "checkpoint weights differ from the baseline's: unpaired comparison"
    return True, None


# ------------------------------------------------------------------------------------------------ extraction

def seed_result(record: Mapping[str, Any], split: str, metric: str) -> SeedResult:
    preds = record.get("predictions", {}).get(split) or {}
    value = record.get("metrics", {}).get(split, {}).get(metric)
    return SeedResult(seed=int(record["config"]["seed"]), value=value, predictions=preds.get("predictions"),
                      labels=preds.get("labels") or None, idx=preds.get("idx"))


def curve(record: Mapping[str, Any], split: str, metric: str) -> list[tuple[float, float]]:
    return [(e["step"], e[split].get(metric)) for e in record.get("epochs", []) if split in e]


def seconds_at_step(record: Mapping[str, Any], step: float) -> float | None:
    seconds = record.get("timings", {}).get("train_step_seconds") or []
    if math.isinf(step) or not seconds:
        return None
    return round(sum(seconds[:int(step)]), 3)


def _label(group: str, split: str, splits: Sequence[str]) -> str:
    return f"{group}[{split}]" if len(splits) > 1 else group


# ------------------------------------------------------------------------------------------------ judging

def judge_quality(group: str, records: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]], *,
                  alpha: float) -> list[Verdict]:
    """Quality verdicts (primary metric, every eval split) for one task x model over the seeds that ran."""
    if not records:
        return []
    task = records[0]["task"]
    metric = task["primary_metric"]
    splits = list(records[0].get("metrics") or {}) or list(baselines[0]["metrics"] if baselines else [])
    if not splits:
        return [compare.not_comparable(group, "quality", metric, f"the run failed: {records[0].get('error')}")]
    if not baselines:
        return [compare.not_comparable(_label(group, s, splits), "quality", metric,
                                       "no baseline for this cell; " + UPDATE_HINT) for s in splits]
    by_seed = {b["config"]["seed"]: b for b in baselines}
    why_not, pair, notes = None, True, []
    for record in records:
        reference = by_seed.get(record["config"]["seed"], baselines[0])
        why_not = why_not or why_not_comparable(reference, record)
        ok, note = pairable(reference, record)
        if not ok:
            pair = False
            notes.append(note or "")
    missing = sorted(set(r["config"]["seed"] for r in records) - set(by_seed))
    if missing:
        notes.append(f"seed(s) {missing} have no baseline: judged on the noise band only")
    verdicts = []
    for split in splits:
        verdicts.append(compare.quality_verdict(
            cell=_label(group, split, splits), metric=metric,
            baseline=[seed_result(b, split, metric) for b in baselines],
            candidate=[seed_result(r, split, metric) for r in records], higher_is_better=task["higher_is_better"],
            is_regression=task["is_regression"], pairable=pair, alpha=alpha, why_not=why_not,
            notes=sorted(set(notes))))
    return verdicts


def judge_convergence(group: str, records: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]], *,
                      fraction: float, min_ratio: float = 1.25) -> list[Verdict]:
    """Time-to-quality: steps (and seconds) until the eval metric first reaches `fraction` of the baseline's final."""
    if not records:
        return []
    task = records[0]["task"]
    metric = task["primary_metric"]
    label = f"steps to {fraction:.0%} {metric}"
    if not baselines:
        return [compare.not_comparable(group, "convergence", label, "no baseline for this cell; " + UPDATE_HINT)]
    split = next(iter(baselines[0]["metrics"]))
    by_seed = {b["config"]["seed"]: b for b in baselines}
    why_not = next((w for r in records if (w := why_not_comparable(by_seed.get(r["config"]["seed"], baselines[0]),
                                                                     r))), None)
    evals = [e["step"] for e in records[0].get("epochs", [])]
    if not why_not and len(evals) < 2:
        why_not = "fewer than two evaluations during training (raise evals_per_epoch or epochs)"
    interval = float(min(b - a for a, b in zip(evals, evals[1:]))) if len(evals) > 1 else 0.0
    base = {s: (b["metrics"][split][metric], curve(b, split, metric)) for s, b in by_seed.items()
            if b["metrics"].get(split, {}).get(metric) is not None}
    now = {r["config"]["seed"]: curve(r, split, metric) for r in records if r.get("status") == "ok"}
    verdict = compare.convergence_verdict(cell=group, metric=metric, fraction=fraction, baseline=base, candidate=now,
                                          eval_interval=interval, higher_is_better=task["higher_is_better"],
                                          min_ratio=min_ratio, why_not=why_not)
    if verdict.verdict != compare.NOT_COMPARABLE:
        first = next(r for r in records if r["config"]["seed"] in base)
        seconds = seconds_at_step(first, verdict.now or math.inf)
        base_seconds = seconds_at_step(by_seed[first["config"]["seed"]], verdict.baseline or math.inf)
        extra = f"; seconds of training to target: {base_seconds} in the baseline, {seconds} now"
        verdict = dataclasses.replace(verdict, detail=verdict.detail + extra, extras={
            **verdict.extras, "seconds_now": seconds, "seconds_baseline": base_seconds})
    return [verdict]


def throughput_why_not(baseline: Mapping[str, Any] | None, measurement: Mapping[str, Any], *,
                       available: Sequence[str] = ()) -> str | None:
    if baseline is None:
        elsewhere = f" (baselines exist for: {', '.join(available)})" if available else ""
        return (f"no throughput baseline for device class {measurement['device_class']}{elsewhere}: recorded, "
                f"not judged; " + UPDATE_HINT)
    differences = config_differences(baseline["context"]["config"], measurement["context"]["config"],
                                     THROUGHPUT_CONFIG)
    if differences:
        return "settings differ: " + "; ".join(differences)
    base_model, now_model = baseline["context"]["model"], measurement["context"]["model"]
    if base_model.get("num_parameters") != now_model.get("num_parameters"):
        return (f"the model has {now_model.get('num_parameters')} parameters now, "
                f"{base_model.get('num_parameters')} in the baseline")
    return None


def machine_drift(baseline: Mapping[str, Any], now: Mapping[str, Any], *, tolerance: float,
                  busy_tolerance: float = math.inf) -> str | None:
    """Why the machine was not in the baseline's state, or None: other processes' CPU use differs (a neighbour's
    torch job slows ours by 10-25% while a small numpy reference barely moves: measured here), or the fixed
    reference workload runs at another speed or unsteadily (frequency, throttling, noisy host)."""
    busy_base, busy_now = baseline.get("busy_cores"), now.get("busy_cores")
    if busy_base is not None and busy_now is not None and abs(busy_now - busy_base) > busy_tolerance:
        return (f"machine busier or quieter than at baseline: other processes used {busy_now:.2f} CPU cores while "
                f"measuring, {busy_base:.2f} then (tolerance ±{busy_tolerance:g}); rerun on a quiet machine")
    base_ref, now_ref = baseline.get("reference_seconds") or [], now.get("reference_seconds") or []
    if not base_ref or not now_ref:
        return None
    for name, values in (("now", now_ref), ("at baseline", base_ref)):
        ordered = sorted(values)
        if len(ordered) >= 5:  # one transient blip at either end (an interrupt) is not an unsteady machine
            ordered = ordered[1:-1]
        spread = ordered[-1] / ordered[0] - 1
        if spread > 2 * tolerance:
            return (f"machine speed unsteady while measuring {name}: a fixed reference workload varied by "
                    f"{spread:.0%}; rerun on a quiet machine")
    drift = statistics.median(now_ref) / statistics.median(base_ref) - 1
    if abs(drift) > tolerance:
        return (f"machine runs at another speed than at baseline: a fixed reference workload is {drift:+.0%} "
                f"slower (tolerance ±{tolerance:.0%}); rerun on a quiet machine or re-measure the baseline")
    return None


def judge_throughput(group: str, part: str, measurement: Mapping[str, Any], baseline: Mapping[str, Any] | None, *,
                     alpha: float, min_effect: float, speed_tolerance: float, busy_tolerance: float = 0.25,
                     available: Sequence[str] = ()) -> Verdict:
    """`part` "train" (seconds per optimizer step) or "eval" (seconds per prediction batch)."""
    samples_key, metric = ("step_seconds", "train s/step") if part == "train" else ("batch_seconds", "eval s/batch")
    now = measurement[part]
    why_not = throughput_why_not(baseline, measurement, available=available)
    base = (baseline or {}).get(part) or {}
    if baseline is not None and not base and not why_not:
        why_not = f"the baseline has no {part} measurement; " + UPDATE_HINT
    why_not = why_not or machine_drift(base, now, tolerance=speed_tolerance, busy_tolerance=busy_tolerance)
    notes = []
    if base.get("samples_per_second") and now.get("samples_per_second"):
        notes.append(f"{base['samples_per_second']:.1f} -> {now['samples_per_second']:.1f} samples/s, "
                     f"{base['tokens_per_second']:.0f} -> {now['tokens_per_second']:.0f} tokens/s")
    if base.get("reference_seconds") and now.get("reference_seconds"):
        drift = statistics.median(now["reference_seconds"]) / statistics.median(base["reference_seconds"]) - 1
        notes.append(f"machine reference {drift:+.1%}")
    if now.get("busy_cores") is not None:
        notes.append(f"other processes used {now['busy_cores']:.2f} cores now, {base.get('busy_cores', '?')} "
                     "at baseline")
    return compare.throughput_verdict(cell=group, metric=metric, baseline=base.get(samples_key) or [],
                                      candidate=now.get(samples_key) or [], alpha=alpha, min_effect=min_effect,
                                      why_not=why_not, notes=notes)


def throughput_classes(root: Path, tier: str, group: str) -> list[str]:
    """Device classes that have a throughput baseline for `group`."""
    return sorted(p.parent.name for p in (Path(root) / tier).glob(f"*/{group}.throughput.json"))


def inter_seed_flip_rate(baselines: Sequence[Mapping[str, Any]], split: str) -> float | None:
    """Mean fraction of eval predictions that differ between two baseline seeds: how much re-seeding moves them."""
    preds = [b["predictions"][split]["predictions"] for b in baselines if b.get("predictions", {}).get(split)]
    rates = [sum(x != y for x, y in zip(a, b)) / len(a) for i, a in enumerate(preds) for b in preds[i + 1:] if a]
    return sum(rates) / len(rates) if rates else None


def check_tier_name(tier: str, known: Iterable[str]) -> None:
    if tier not in known:
        raise HarnessError(f"Unknown tier {tier!r}; available: {', '.join(sorted(known))}.")
