"""Verdicts: pure functions over plain values (no I/O, no pytest), tested on synthetic series.

Three kinds of verdict, each `improved | unchanged | regressed | not comparable`:

- quality (`quality_verdict`): the task metric of a cell, over one or more seeds. Two tests must agree before a
  change is called real: (1) the *noise band* — the difference of seed means against the run-to-run noise, taken as
  the larger of the baseline's seed spread and the eval set's sampling error (binomial for accuracy, a bootstrap
  otherwise), so a change must exceed what re-seeding alone does; (2) when the same checkpoint, data and seeds are
  used, a *paired* per-example test against the baseline's stored predictions: McNemar's exact test for accuracy,
  a paired bootstrap for any other metric. The verdict's p-value is the larger of the two (both must reject).
  Bit-identical reruns therefore give p = 1.0.
- throughput (`throughput_verdict`): per-step (or per-batch) seconds, warm-up excluded; Mann-Whitney U plus a
  minimum effect on the ratio of medians, so a shift that is significant but small (machine noise) is not flagged.
- convergence (`convergence_verdict`): optimizer steps until the eval metric first reaches a fraction of the
  baseline's final value; flagged when that takes `min_ratio` times as many steps and more than one eval apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from harness.data.metrics import METRICS
from harness.judging.verdict import (IMPROVED, NOT_COMPARABLE, REGRESSED, UNCHANGED, VERDICTS, Verdict,
                                     format_p, not_comparable, regressions)

BOOTSTRAP_SEED = 20240611  # fixed: the same inputs always give the same interval and p-value


# ------------------------------------------------------------------------------------------------ quality inputs

@dataclass(frozen=True)
class SeedResult:
    """One seed's outcome on one eval split: the metric and, when stored, the per-example predictions."""

    seed: int
    value: float | None
    predictions: Sequence[float] | None = None  # class ids or regression scores, aligned with idx
    labels: Sequence[float] | None = None
    idx: Sequence[int] | None = None


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def minimum_detectable_effect(noise_se: float, *, alpha: float, power: float = 0.8) -> float:
    """Smallest true difference a two-sided z-test at `alpha` detects with probability `power`."""
    return (_z(alpha) + float(stats.norm.ppf(power))) * noise_se


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (b: only baseline right, c: only now right)."""
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def mcnemar_mde(n: int, discordance: float, *, alpha: float, power: float = 0.8) -> float:
    """Smallest accuracy difference McNemar detects on `n` pairs with discordant-pair rate `discordance`."""
    return (_z(alpha) + float(stats.norm.ppf(power))) * math.sqrt(max(discordance, 1.0 / n) / n)


# Vectorised metrics, registered once in harness.data.metrics: rows of `pred`/`ref` are bootstrap resamples.
VECTOR_METRICS: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    name: metric.rows for name, metric in METRICS.items()}


def metric_value(metric: str, predictions: Sequence[float], labels: Sequence[float]) -> float:
    if metric not in VECTOR_METRICS:
        raise ValueError(f"No per-example statistics for metric {metric!r}; judged metrics: "
                         f"{', '.join(VECTOR_METRICS)}.")
    return float(VECTOR_METRICS[metric](np.asarray(predictions, float), np.asarray(labels, float)))


def _resamples(n: int, rounds: int) -> np.ndarray:
    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(rounds, n))


def sampling_se(metric: str, predictions: Sequence[float], labels: Sequence[float], *, rounds: int = 1000) -> float:
    """Standard error of `metric` from the eval set's finite size: binomial for accuracy, else a bootstrap."""
    pred, ref = np.asarray(predictions, float), np.asarray(labels, float)
    n = len(ref)
    if metric == "accuracy":
        correct = float((pred == ref).sum())
        p = (correct + 0.5) / (n + 1)  # never exactly 0 or 1: a perfect score still has sampling error
        return math.sqrt(p * (1 - p) / n)
    rows = _resamples(n, rounds)
    values = VECTOR_METRICS[metric](pred[rows], ref[rows])
    se = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else 0.0
    if METRICS[metric].correlation:
        # A constant predictor bootstraps to a zero spread; a correlation's sampling error is never below
        # (1 - r^2) / sqrt(n - 1) (its large-sample standard error), so that is the floor.
        r = VECTOR_METRICS[metric](pred[None, :], ref[None, :])[0]
        r = 0.0 if not np.isfinite(r) else float(r)
        se = max(se, (1 - r * r) / math.sqrt(max(n - 1, 1)))
    return se


@dataclass(frozen=True)
class PairedResult:
    delta: float  # now - baseline, pooled over seeds
    interval: tuple[float, float]
    p_value: float
    test: str  # a readable description
    changed: float  # fraction of examples whose prediction changed (label flip rate)
    n: int  # paired examples, all seeds together


def _aligned(base: SeedResult, cand: SeedResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline predictions, current predictions and labels on the examples both runs scored (matched by idx)."""
    if base.idx is None or cand.idx is None:
        return np.asarray(base.predictions, float), np.asarray(cand.predictions, float), np.asarray(base.labels, float)
    at = {int(i): k for k, i in enumerate(cand.idx)}
    keep = [(k, at[int(i)]) for k, i in enumerate(base.idx) if int(i) in at]
    bi, ci = (np.array(x, dtype=int) for x in zip(*keep)) if keep else (np.array([], int), np.array([], int))
    return (np.asarray(base.predictions, float)[bi], np.asarray(cand.predictions, float)[ci],
            np.asarray(base.labels, float)[bi])


def paired_test(metric: str, pairs: Sequence[tuple[SeedResult, SeedResult]], *, is_regression: bool,
                alpha: float, rounds: int = 2000) -> PairedResult:
    """Per-example comparison of the same seeds: McNemar (accuracy) or a paired bootstrap (other metrics)."""
    aligned = [_aligned(b, c) for b, c in pairs]
    n = sum(len(lab) for _, _, lab in aligned)
    if n == 0:
        raise ValueError("no paired examples: the baseline and this run share no eval example ids")
    tol = 1e-4 if is_regression else 0.0  # regression scores are stored rounded to 5 decimals
    changed = sum(int((np.abs(b - c) > tol).sum()) for b, c, _ in aligned) / n
    if changed == 0:
        return PairedResult(0.0, (0.0, 0.0), 1.0, "identical predictions", 0.0, n)
    if metric == "accuracy" and not is_regression:
        b = sum(int(((bp == lab) & (cp != lab)).sum()) for bp, cp, lab in aligned)  # only the baseline right
        c = sum(int(((bp != lab) & (cp == lab)).sum()) for bp, cp, lab in aligned)  # only this run right
        delta = (c - b) / n
        se = math.sqrt(max(b + c - (c - b) ** 2 / n, 0.0)) / n
        z = _z(alpha)
        return PairedResult(delta, (delta - z * se, delta + z * se), mcnemar_exact(b, c),
                            f"McNemar exact b={b} c={c}", changed, n)
    fn = VECTOR_METRICS[metric]
    diffs = np.zeros(rounds)
    observed = 0.0
    for bp, cp, lab in aligned:  # the same resampled examples for both runs: paired
        rows = _resamples(len(lab), rounds)
        diffs += fn(cp[rows], lab[rows]) - fn(bp[rows], lab[rows])
        observed += float(fn(cp, lab) - fn(bp, lab))
    diffs /= len(aligned)
    observed /= len(aligned)
    diffs = diffs[np.isfinite(diffs)]
    lo, hi = (float(v) for v in np.quantile(diffs, [alpha / 2, 1 - alpha / 2]))
    tail = min(float((diffs <= 0).mean()), float((diffs >= 0).mean()))
    p = min(1.0, 2 * max(tail, 1.0 / len(diffs)))
    return PairedResult(observed, (lo, hi), p, f"paired bootstrap ({rounds} resamples)", changed, n)


def between_seed_se(metric: str, results: Sequence[SeedResult], *, rounds: int = 1000) -> float | None:
    """One run's noise on this eval set implied by how the seeds disagree example by example: for each pair of
    seeds, the paired-bootstrap standard deviation of their metric difference over resampled eval examples, over
    sqrt(2) (one run's share), pooled over pairs as a root mean square. If each example comes out right or wrong
    independently between seeds, this is the seed-to-seed spread of the metric on this eval set (for accuracy
    sqrt(d / 2n) with d the pair's disagreement rate); a seed effect shared by many examples is larger, and then
    the seeds' own spread dominates. None with fewer than two seeds holding aligned predictions."""
    scored = [r for r in results if r.predictions is not None and r.labels]
    if len(scored) < 2 or metric not in VECTOR_METRICS:
        return None
    fn, variances = VECTOR_METRICS[metric], []
    for i, a in enumerate(scored):
        for b in scored[i + 1:]:
            pa, pb, labels = _aligned(a, b)
            if len(labels) < 2:
                continue
            rows = _resamples(len(labels), rounds)
            diffs = fn(pa[rows], labels[rows]) - fn(pb[rows], labels[rows])
            variances.append(float(np.var(diffs[np.isfinite(diffs)], ddof=1)) / 2)
    return math.sqrt(float(np.mean(variances))) if variances else None


def _judged_value(result: SeedResult, metric: str) -> float | None:
    """The seed's metric; where the record says nan (a correlation of constant predictions), the value recomputed
    from its predictions, in which a constant prediction correlates 0."""
    if result.value is not None and math.isfinite(result.value):
        return result.value
    if result.predictions is None or not result.labels or metric not in VECTOR_METRICS:
        return None
    value = metric_value(metric, result.predictions, result.labels)
    return value if math.isfinite(value) else None


def quality_verdict(*, kind: str, cell: str, metric: str, baseline: Sequence[SeedResult],
                    candidate: Sequence[SeedResult], higher_is_better: bool = True, is_regression: bool = False,
                    pairable: bool = True, alpha: float = 0.01, power: float = 0.8, why_not: str | None = None,
                    notes: Sequence[str] = ()) -> Verdict:
    """Judge one metric of one cell over seeds. `why_not` set: not comparable. `pairable`: same checkpoint,
    data and config, so seeds present on both sides are compared example by example."""
    if why_not:
        return not_comparable(cell, kind, metric, why_not)
    def finite(results: Sequence[SeedResult]) -> list[float]:
        return [v for v in map(_judged_value, results, [metric] * len(results)) if v is not None]

    cand_values = finite(candidate)
    all_base = finite(baseline)
    # Like with like: the baseline's mean over the seeds that ran now (all its seeds still size the seed spread).
    same_seeds = [r for r in baseline if r.seed in {c.seed for c in candidate}]
    base_values = finite(same_seeds) if len(same_seeds) == len(candidate) else all_base
    if not base_values:
        return not_comparable(cell, kind, metric, f"the baseline has no {metric} value")
    if not cand_values:
        return not_comparable(cell, kind, metric, f"this run produced no {metric} value",
                              baseline=float(np.mean(base_values)))
    base_mean, cand_mean = float(np.mean(base_values)), float(np.mean(cand_values))
    delta = cand_mean - base_mean
    sign = 1.0 if higher_is_better else -1.0

    # Noise band: run-to-run noise of one run on this eval set: the seeds' spread, at least what per-example
    # disagreement between the baseline's seeds implies (with one seed, the eval set's sampling error instead).
    scored = next((r for r in baseline if r.predictions is not None and r.labels is not None and r.labels), None)
    sampling = sampling_se(metric, scored.predictions, scored.labels) if scored else 0.0
    between = between_seed_se(metric, baseline)
    seed_sd = float(np.std(all_base, ddof=1)) if len(all_base) > 1 else 0.0
    per_run = max(seed_sd, sampling if between is None else between)
    noise_se = per_run * math.sqrt(1 / len(base_values) + 1 / len(cand_values))
    by_seed = {r.seed: r for r in baseline if r.predictions is not None}
    pairs = [(by_seed[r.seed], r) for r in candidate if r.seed in by_seed and r.predictions is not None]
    if noise_se == 0 and delta != 0 and not (pairable and pairs):
        # one seed and no per-example predictions: nothing says how far this metric moves by chance, so a change
        # of any size, even 1e-5 from another CPU's summation order, cannot be called real (nor ruled out)
        return not_comparable(cell, kind, metric, f"no noise estimate for {metric}: one seed on each side and no "
                              "per-example predictions to pair or to bootstrap; run more seeds, or record the "
                              "baseline again so its predictions are kept", baseline=base_mean)
    if noise_se > 0:
        p_noise = float(2 * stats.norm.sf(abs(delta) / noise_se))
    else:
        p_noise = 1.0 if delta == 0 else 0.0
    mde = minimum_detectable_effect(noise_se, alpha=alpha, power=power)
    floor = (f"sampling se {sampling:.4f}" if between is None
             else f"between-seed se {between:.4f}")
    parts = [f"noise band ±{_z(alpha) * noise_se:.4f} (seed sd {seed_sd:.4f}, {floor}, "
             f"{len(base_values)} vs {len(cand_values)} seeds) p={format_p(p_noise)}"]
    extras: dict[str, Any] = {"p_noise": p_noise, "noise_se": noise_se, "seed_sd": seed_sd, "sampling_se": sampling,
                              "between_seed_se": between, "mde": mde, "seeds_baseline": len(base_values),
                              "seeds_now": len(cand_values)}
    z = _z(alpha)
    interval = (delta - z * noise_se, delta + z * noise_se)
    p_value = p_noise

    if pairable and pairs:
        paired = paired_test(metric, pairs, is_regression=is_regression, alpha=alpha)
        p_value = max(p_noise, paired.p_value)  # both tests must reject
        interval = paired.interval
        parts.insert(0, f"{paired.test} p={format_p(paired.p_value)}, {paired.changed:.1%} of "
                        f"{paired.n} predictions changed")
        extras.update({"p_paired": paired.p_value, "flip_rate": paired.changed, "paired_n": paired.n})
    elif not pairable:
        parts.insert(0, "unpaired")
    parts.append(f"MDE {mde:.4f}")
    parts.extend(notes)
    if p_value < alpha and delta * sign < 0:
        verdict = REGRESSED
    elif p_value < alpha and delta * sign > 0:
        verdict = IMPROVED
    else:
        verdict = UNCHANGED
    return Verdict(cell=cell, kind=kind, metric=metric, verdict=verdict, baseline=base_mean, now=cand_mean,
                   delta=delta, interval=interval, p_value=p_value, detail="; ".join(parts), extras=extras)


# ------------------------------------------------------------------------------------------------ throughput

def throughput_verdict(*, kind: str, cell: str, metric: str, baseline: Sequence[float],
                       candidate: Sequence[float], alpha: float = 0.01, min_effect: float = 0.10, lower_is_better: bool = True,
                       why_not: str | None = None, notes: Sequence[str] = (), rounds: int = 2000) -> Verdict:
    """Mann-Whitney U on timing samples plus a minimum effect on the ratio of medians (`now / baseline - 1`)."""
    if why_not:
        return not_comparable(cell, kind, metric, why_not, relative=True)
    base, cand = np.asarray(baseline, float), np.asarray(candidate, float)
    if len(base) < 3 or len(cand) < 3:
        return not_comparable(cell, kind, metric, f"too few timing samples ({len(base)} baseline, "
                              f"{len(cand)} now; need 3 each)", relative=True)
    med_b, med_c = float(np.median(base)), float(np.median(cand))
    effect = med_c / med_b - 1
    p = float(stats.mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    ratios = (np.median(cand[rng.integers(0, len(cand), (rounds, len(cand)))], axis=1)
              / np.median(base[rng.integers(0, len(base), (rounds, len(base)))], axis=1)) - 1
    lo, hi = (float(v) for v in np.quantile(ratios, [alpha / 2, 1 - alpha / 2]))
    worse = effect > 0 if lower_is_better else effect < 0
    size = abs(effect) if worse else abs(1 / (1 + effect) - 1)  # speed-ups measured as a speed ratio
    if p < alpha and size >= min_effect:
        verdict = REGRESSED if worse else IMPROVED
    else:
        verdict = UNCHANGED
    detail = (f"Mann-Whitney U p={format_p(p)}, {len(base)} vs {len(cand)} samples; "
              f"flagged at ≥{min_effect:.0%}")
    return Verdict(cell=cell, kind=kind, metric=metric, verdict=verdict, baseline=med_b, now=med_c,
                   delta=effect, interval=(lo, hi), p_value=p, relative=True,
                   detail="; ".join([detail, *notes]), extras={"samples_baseline": len(base),
                                                                "samples_now": len(cand)})


# ------------------------------------------------------------------------------------------------ convergence

Curve = Sequence[tuple[float, float]]  # (optimizer step, eval metric) in training order


def steps_to_target(curve: Curve, target: float, *, higher_is_better: bool = True) -> float:
    """The first step whose eval metric reaches `target`; inf if it never does."""
    for step, value in curve:
        if value is not None and (value >= target if higher_is_better else value <= target):
            return float(step)
    return math.inf


def convergence_verdict(*, kind: str, cell: str, metric: str, fraction: float,
                        baseline: Mapping[int, tuple[float, Curve]], candidate: Mapping[int, Curve], eval_interval: float, higher_is_better: bool = True,
                        min_ratio: float = 1.25, why_not: str | None = None) -> Verdict:
    """Steps to `fraction` of the baseline's final metric, per seed (each against its own baseline seed).

    `baseline`: seed -> (final metric, curve); `candidate`: seed -> curve. Flagged when the median over seeds needs
    `min_ratio` times the baseline's steps and more than one eval interval more (the curve's resolution)."""
    label = f"steps to {fraction:.0%} {metric}"
    if why_not:
        return not_comparable(cell, kind, label, why_not)
    seeds = sorted(set(baseline) & set(candidate))
    if not seeds:
        return not_comparable(cell, kind, label, "no seed in common with the baseline")
    base_steps, cand_steps = [], []
    for seed in seeds:
        final, base_curve = baseline[seed]
        target = final * fraction if higher_is_better else final / fraction
        base_steps.append(steps_to_target(base_curve, target, higher_is_better=higher_is_better))
        cand_steps.append(steps_to_target(candidate[seed], target, higher_is_better=higher_is_better))
    b, c = float(np.median(base_steps)), float(np.median(cand_steps))
    if math.isinf(b):
        return not_comparable(cell, kind, label, "the baseline itself never reached the target "
                              "(its final value sits below its own earlier evals)", baseline=b, now=c)
    ratio = c / b if b > 0 else (math.inf if c > 0 else 1.0)
    if math.isinf(c):
        verdict, note = REGRESSED, "never reached within the run"
    elif ratio >= min_ratio and c - b > eval_interval:
        verdict, note = REGRESSED, f"{ratio:.2f}x the baseline's steps"
    elif ratio <= 1 / min_ratio and b - c > eval_interval:
        verdict, note = IMPROVED, f"{ratio:.2f}x the baseline's steps"
    else:
        verdict, note = UNCHANGED, f"{ratio:.2f}x the baseline's steps"
    detail = (f"{note}; target {fraction:.0%} of the baseline's final {metric}; eval every {eval_interval:g} "
              f"steps; flagged at ≥{min_ratio:g}x; {len(seeds)} seed(s)")
    return Verdict(cell=cell, kind=kind, metric=label, verdict=verdict, baseline=b, now=c,
                   delta=c / b - 1 if not math.isinf(c) else math.inf, relative=True, detail=detail,
                   interval=(-eval_interval / b, eval_interval / b) if b > 0 else None,
                   extras={"steps_baseline": base_steps, "steps_now": cand_steps})

