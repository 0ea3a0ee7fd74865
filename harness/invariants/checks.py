"""Pure checks of train() invariants: two observations (or one and the documented formula) -> `Broken` items.

Each check reports, per quantity, the first optimizer step where the relation breaks, with both values and the
tolerance. Tolerances are stated where they are defined (see TOLERANCES) and justified in their comment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np

from harness.contracts.cases import build_rows
from harness.core import compat
from harness.invariants.cases import Broken, TrainCase
from harness.invariants.observation import Logged, TrainRun

# Relative tolerances (|a - b| <= rtol * max(|a|, |b|)) and absolute ones where stated.
# - accumulation: both runs compute the same per-example losses and gradients; only float32 summation order and
#   the padded width of a batch (other BLAS blocking) differ. Sums of a few dozen float32 terms agree to ~1e-7
#   relative (measured worst over 24 drawn cases with the normalisation repaired: 1.2e-7 loss, 1.5e-7 grad norm),
#   so 1e-5 leaves ~70x, while a normalisation error is off by a factor (1/k or more). Parameters after S steps
#   also get an absolute tolerance per unit of lr x S: SGD moves them by lr x gradient (measured <= 1.3e-6), but
#   AdamW divides by sqrt(v) + eps, which turns gradient components that are zero up to rounding into updates up
#   to lr (measured <= 3.3e-4; a 2x loss scale moves them ~0.2).
# - schedule: LambdaLR multiplies in float64; the formula is evaluated in float64 too.
# - weight_decay: p * (1 - lr * wd) is one float32 multiply per step, as the product here is.
# - loss: the replay runs the same float32 forward on the same batch tensors, in eval mode with dropout zero.
# - dtype: bf16 keeps 8 significant bits (0.4 % per rounding; fp16 11); the first loss of a two-layer encoder stays
#   within 3 % of float32 (measured below 1 %); a run not in the precision asked is caught by its dtypes, not this bound.
TOLERANCES: Mapping[str, float] = MappingProxyType({
    "accumulation": 1e-5, "schedule": 1e-9, "weight_decay": 1e-6, "loss": 1e-5, "epoch": 1e-9,
    "dtype_first_loss": 3e-2,
})
PARAMETER_ATOL_PER_LR_STEP: Mapping[str, float] = MappingProxyType({"adamw_torch": 1e-2, "sgd": 1e-4})


# ------------------------------------------------------------------ helpers


def _relative(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if a == b else (abs(a - b) / scale if scale > 0 else math.inf)


def _errors(invariant: str, setting: str, *observed: TrainRun) -> list[Broken]:
    return [Broken(invariant, setting, None, f"train() raised {type(o.error).__name__}: {o.error}")
            for o in observed if o.error is not None]


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    """Within atol + rtol of the larger; a NaN or an infinity only matches the same value (fp16's skipped steps log
    an infinite grad norm in both runs alike)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def compare_logs(invariant: str, setting: str, a: Sequence[Logged], b: Sequence[Logged],
                 fields: Iterable[str], rtol: float, labels: tuple[str, str] = ("", ""),
                 atol: Mapping[str, float] = MappingProxyType({})) -> list[Broken]:
    """For each field, the first logged step where `a` and `b` differ by more than `rtol` (relative) plus the
    field's `atol`."""
    steps_a, steps_b = [e.step for e in a], [e.step for e in b]
    if steps_a != steps_b:
        first = next((x for x, y in zip(steps_a, steps_b) if x != y), min(len(steps_a), len(steps_b)))
        step = first if isinstance(first, int) and first in steps_a + steps_b else None
        return [Broken(invariant, setting, step, f"logged steps differ: {steps_a} vs {steps_b}")]
    found = []
    for name in fields:
        for x, y in zip(a, b):
            va, vb = getattr(x, name), getattr(y, name)
            slack = atol.get(name, 0.0)
            if va is None or vb is None or not _close(va, vb, rtol, slack):
                ratio = ("missing" if va is None or vb is None else "not finite" if not math.isfinite(va + vb)
                         else f"ratio {va / vb:.6g}" if vb else "ratio undefined")
                found.append(Broken(invariant, setting, x.step,
                                    f"logged {name.replace('_', ' ')} differs at step {x.step}: "
                                    f"{_show(va)}{labels[0]} vs {_show(vb)}{labels[1]} ({ratio}; "
                                    f"{_bound(rtol, slack)})"))
                break
    return found


def _rounding() -> Mapping[str, float]:
    """Absolute slack for logged losses that the version rounds (two rounded values differ by up to one unit)."""
    decimals = compat.logged_loss_decimals()
    return MappingProxyType({"loss": 10.0 ** -decimals if decimals is not None else 0.0})


def _show(value: float | None) -> str:
    return "None" if value is None else f"{value:.6g}"


def _bound(rtol: float, atol: float = 0.0) -> str:
    if rtol == atol == 0:
        return "must be bit-identical"
    return f"tolerance {atol:g} + {rtol:g} * |value|" if atol else f"tolerance {rtol:g} relative"


def compare_params(invariant: str, setting: str, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                   step: int, rtol: float, atol: float = 0.0) -> list[Broken]:
    """The parameter that differs most beyond |a - b| <= atol + rtol * |b| after `step`, if any."""
    if a.keys() != b.keys():
        return [Broken(invariant, setting, step, f"parameter names differ: {sorted(a.keys() ^ b.keys())[:5]}")]
    worst, excess = None, 0.0
    for name in a:
        gap = np.abs(a[name] - b[name]) - (atol + rtol * np.abs(b[name]))
        top = float(gap.max()) if gap.size else 0.0
        if top > excess:
            worst, excess = name, top
    if worst is None:
        return []
    delta = float(np.abs(a[worst] - b[worst]).max())
    return [Broken(invariant, setting, step, f"parameters differ after step {step}: {worst} max |difference| "
                                             f"{delta:.3g} ({_bound(rtol, atol)})")]


# ------------------------------------------------------------------ the invariants


def accumulation(a: TrainRun, b: TrainRun) -> list[Broken]:
    """`a` accumulates k micro-batches of b, `b` takes batches of b*k: same losses, grad norms, parameters."""
    return _equivalent("accumulation", _accumulation_setting("gradient accumulation", a, b), a, b)


def _accumulation_setting(what: str, a: TrainRun, b: TrainRun) -> str:
    c = a.case
    return (f"{what} (batch {c.batch} x {c.accumulation} vs {b.case.batch} x {b.case.accumulation}, "
            f"{'padded' if c.padded else 'unpadded'}, {c.model}, {c.data.rows} rows, {c.epochs} epoch(s), "
            f"{c.optimizer})")


def _equivalent(invariant: str, setting: str, a: TrainRun, b: TrainRun) -> list[Broken]:
    """Two runs that must train alike: the same logged losses and grad norms, and the same parameters (within the
    accumulation tolerances: float32 summation order and padded widths differ)."""
    if a.error or b.error:
        return _errors(invariant, setting, a, b)
    rtol = TOLERANCES["accumulation"]
    found = compare_logs(invariant, setting, a.logs, b.logs, ("loss", "grad_norm"), rtol, atol=_rounding())
    atol = PARAMETER_ATOL_PER_LR_STEP[a.case.optimizer] * a.case.learning_rate * a.global_step
    return found + compare_params(invariant, setting, a.params, b.params, a.global_step, rtol, atol)


def loss_options(a: TrainRun, b: TrainRun) -> list[Broken]:
    """Accumulation equivalence through a loss path other than the model's own (full windows: every path here is a
    per-example mean, so k micro-batch means averaged equal the mean of the whole batch)."""
    what = {"label_smoothing": "label_smoothing_factor 0.1", "custom_mean": "a compute_loss override returning the "
            "mean loss", "class_weights": "a compute_loss override with class-weighted per-example losses",
            "model": "the model's own loss"}[a.case.loss_path]
    return _equivalent("loss_options", _accumulation_setting(f"gradient accumulation with {what}", a, b), a, b)


def collation(observed: TrainRun, reference: TrainRun) -> list[Broken]:
    """The collator and label type hand the model labels of the task's dtype, the model picks the task's
    problem_type, and training equals the padding collator's with int labels."""
    c = observed.case
    label_dtypes = {"float32", "float64"} if c.num_labels == 1 else {"int64"}
    problem = "regression" if c.num_labels == 1 else "single_label_classification"
    collator = {"padding": "DataCollatorWithPadding", "padding-8": "DataCollatorWithPadding(pad_to_multiple_of=8)",
                "default": "default_data_collator over rows padded beforehand"}[c.collator]
    setting = (f"collation ({collator}, labels as {c.label_type}, {c.model}, {c.num_labels} label(s)) vs "
               "DataCollatorWithPadding with int labels")
    found = []
    for which, seen in (("", observed), ("the reference run: ", reference)):
        if not seen.label_dtypes <= label_dtypes:
            found.append(Broken("collation", setting, 1, f"{which}the collator gave the model labels of dtype "
                                                         f"{sorted(seen.label_dtypes)} at step 1, expected "
                                                         f"{' or '.join(sorted(label_dtypes))}"))
        if seen.error is None and seen.problem_type != problem:
            found.append(Broken("collation", setting, None, f"{which}the model trained as {seen.problem_type!r}, "
                                                            f"expected {problem!r}"))
    return found + _equivalent("collation", setting, observed, reference)


def expected_counters(case: TrainCase) -> dict[str, Any]:
    """What the documented step accounting gives for `case` (no interruption)."""
    per_epoch = compat.update_steps_per_epoch(case.batches_per_epoch, case.accumulation)
    total = case.max_steps if case.max_steps > 0 else case.epochs * per_epoch
    full, rest = divmod(total, per_epoch)
    consumed = min(case.batches_per_epoch, rest * case.accumulation)
    def every(n: int | None, last: bool) -> list[int]:
        """Steps that are multiples of n, plus the last step if `last` and it is not one (none without n)."""
        if not n:
            return []
        return [s for s in range(1, total + 1) if s % n == 0] + ([total] if last and total % n else [])

    evaluated = every(case.eval_steps, compat.evaluates_after_last_step())
    saved = every(case.save_steps, True)  # save_strategy="steps" also saves after the last step
    logged = every(case.logging_steps, False)
    return {"global_step": total, "epoch": full + consumed / case.batches_per_epoch, "evaluated_at": evaluated,
            "saved_at": saved, "logged_at": logged, "log_entries": len(logged) + len(evaluated) + 1,
            "steps_per_epoch": per_epoch}


def steps(observed: TrainRun) -> list[Broken]:
    c = observed.case
    want = expected_counters(c)
    setting = (f"step accounting ({c.data.rows} rows, batch {c.batch} x {c.accumulation}, "
               f"{f'max_steps {c.max_steps}' if c.max_steps > 0 else f'{c.epochs} epoch(s)'}: "
               f"{want['steps_per_epoch']} step(s) per epoch, logging/eval/save every {c.logging_steps}/"
               f"{c.eval_steps}/{c.save_steps})")
    if observed.error:
        return _errors("steps", setting, observed)
    found = []
    if observed.global_step != want["global_step"]:
        step = min(observed.global_step, want["global_step"]) + 1
        found.append(Broken("steps", setting, step, f"{'no' if step > observed.global_step else 'an extra'} "
                                                    f"optimizer step {step}: training ended at global_step "
                                                    f"{observed.global_step}, expected {want['global_step']}"))
    elif not math.isclose(observed.epoch, want["epoch"], rel_tol=TOLERANCES["epoch"]):  # else it follows
        found.append(Broken("steps", setting, observed.global_step,
                            f"state.epoch at the end is {observed.epoch:.6g}, expected {want['epoch']:.6g}"))
    for what, seen in (("evaluated_at", observed.evaluated_at), ("saved_at", observed.saved_at),
                       ("logged_at", tuple(e.step for e in observed.logs))):
        if list(seen) != want[what]:
            first = min(set(seen) ^ set(want[what]), default=None)
            found.append(Broken("steps", setting, first, f"{what.replace('_', ' ')} steps {list(seen)}, expected "
                                                         f"{want[what]} (first difference at step {first})"))
    if observed.log_entries != want["log_entries"]:
        found.append(Broken("steps", setting, None, f"{observed.log_entries} log_history entries, expected "
                                                    f"{want['log_entries']} (losses + evaluations + train metrics)"))
    return found


def schedule_factor(name: str, step: int, warmup: int, total: int) -> float:
    """The documented multiplier of the base learning rate after `step` scheduler steps (float64)."""
    if step < warmup:
        return step / max(1, warmup)
    if name == "constant_with_warmup":
        return 1.0
    if name == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    if name == "cosine":  # half a cosine period from warm-up to the last step
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
    raise ValueError(f"no formula for scheduler {name!r}")


def schedule(observed: TrainRun) -> list[Broken]:
    """Step t (1-based) trains with the rate after t - 1 scheduler steps; after the last one it is factor(T)."""
    c = observed.case
    total = observed.max_steps
    setting = (f"learning-rate schedule ({c.scheduler}, warm-up {c.warmup_steps} of {total} steps, "
               f"lr {c.learning_rate:g})")
    if observed.error:
        return _errors("schedule", setting, observed)
    rtol, skipped = TOLERANCES["schedule"], 0
    for entry in observed.logs:
        want = c.learning_rate * schedule_factor(c.scheduler, entry.step - 1 - skipped, c.warmup_steps, total)
        if not math.isclose(entry.learning_rate, want, rel_tol=rtol, abs_tol=1e-15):
            lag = f", {skipped} overflowed step(s) skipped before it" if skipped else ""
            return [Broken("schedule", setting, entry.step,
                           f"logged learning rate differs at step {entry.step}: {entry.learning_rate:.6g} vs formula "
                           f"{want:.6g} ({_bound(rtol)}{lag})")]
        skipped += _overflowed(c, entry)
    end = c.learning_rate * schedule_factor(c.scheduler, total - skipped, c.warmup_steps, total)
    if not math.isclose(observed.final_lr, end, rel_tol=rtol, abs_tol=1e-15):
        return [Broken("schedule", setting, total, f"learning rate after the last step (step {total}) is "
                                                   f"{observed.final_lr:.6g}, formula {end:.6g}")]
    return []


def _overflowed(case: TrainCase, entry: Logged) -> bool:
    """fp16 loss scaling skips an optimizer step whose gradients overflowed (its logged grad norm is inf or nan), and
    the scheduler does not step with it, so the rate lags by the steps skipped so far (seen only when every step is
    logged)."""
    return case.precision == "fp16" and case.logging_steps == 1 and not math.isfinite(entry.grad_norm or 0.0)


def _identical(invariant: str, setting: str, a: TrainRun, b: TrainRun, rtol: float = 0.0) -> list[Broken]:
    """Logs, parameter dtypes and parameters equal within `rtol` (0: bit-identical)."""
    if a.error or b.error:
        return _errors(invariant, setting, a, b)
    found = compare_logs(invariant, setting, a.logs, b.logs, ("loss", "grad_norm", "learning_rate"), rtol)
    for step, (x, y) in enumerate(zip(a.step_dtypes, b.step_dtypes), 1):
        if x != y:
            name = next(n for n in x if x[n] != y.get(n))
            found.append(Broken(invariant, setting, step, f"parameter dtypes differ after step {step}: {name} is "
                                                          f"{x[name]} vs {y.get(name)}"))
            break
    return found + compare_params(invariant, setting, a.params, b.params, a.global_step, rtol)


def resume(resumed: TrainRun, straight: TrainRun) -> list[Broken]:
    """The resumed run equals the straight one. The checkpoint is where the resumed run's first Trainer stopped:
    the drawn step, or the last step but one of a Trainer that planned fewer steps (driver.interruption)."""
    c = resumed.case
    where = resumed.interrupted_at if resumed.interrupted_at is not None else c.interrupt_at
    moved = f" (drawn at {c.interrupt_at}, past the Trainer's plan)" if where != c.interrupt_at else ""
    setting = (f"resume ({c.model}, checkpoint at step {where}{moved} of {straight.global_step}, "
               f"{'dropout on' if c.dropout else 'dropout off'}, {c.optimizer}, {c.scheduler})")
    return _identical("resume", setting, resumed, straight)


def determinism(a: TrainRun, b: TrainRun) -> list[Broken]:
    c = a.case
    setting = f"determinism ({c.model}, seed {c.seed}, same case twice, {'dropout on' if c.dropout else 'dropout off'})"
    found = _identical("determinism", setting, a, b)
    if not found and a.batches != b.batches:
        first = next(i for i, (x, y) in enumerate(zip(a.batches, b.batches)) if x != y)
        found.append(Broken("determinism", setting, None, f"micro-batch {first} holds examples {a.batches[first]} "
                                                          f"vs {b.batches[first]}"))
    return found


def _per_epoch(observed: TrainRun) -> list[list[int]]:
    """The sorted example indices of each epoch the run went through, the last one possibly cut short."""
    per = observed.case.batches_per_epoch
    return [sorted(i for batch in observed.batches[e:e + per] for i in batch)
            for e in range(0, len(observed.batches), per)]


def _sampling_seed(case: TrainCase) -> int:
    """What orders the examples: data_seed, or the seed when data_seed is not set (documented)."""
    return case.data_seed if case.data_seed is not None else case.seed


def data_seed(a: TrainRun, b: TrainRun) -> list[Broken]:
    setting = (f"data_seed (seed {a.case.seed}, data_seed {a.case.data_seed} vs seed {b.case.seed}, data_seed "
               f"{b.case.data_seed}, {a.case.data.rows} rows, batch {a.case.batch})")
    if a.error or b.error:
        return _errors("data_seed", setting, a, b)
    # A run that ends before its last epoch does (a step-accounting defect: the steps invariant reports it) is
    # judged on what it saw: each complete epoch holds every example once, the epoch it stopped in none twice.
    every, epochs = list(range(a.case.data.rows)), _per_epoch(a)
    stopped_early = a.epoch < a.case.epochs - TOLERANCES["epoch"]
    for epoch, (x, y) in enumerate(zip(epochs, _per_epoch(b))):
        cut = stopped_early and epoch == len(epochs) - 1
        once = len(set(x)) == len(x) and set(x) <= set(every) if cut else x == every
        if x != y or not once:
            rule = "an epoch cut short sees none twice" if cut else f"each epoch sees all {len(every)} once"
            return [Broken("data_seed", setting, None, f"epoch {epoch} saw examples {x} vs {y}; {rule}")]
    if _sampling_seed(a.case) == _sampling_seed(b.case) and a.batches != b.batches:
        first = next(i for i, (x, y) in enumerate(zip(a.batches, b.batches)) if x != y)
        return [Broken("data_seed", setting, None, f"same data_seed, other order: micro-batch {first} holds "
                                                   f"{a.batches[first]} vs {b.batches[first]}")]
    return []


def loss(trained: TrainRun, replayed: TrainRun | None) -> list[Broken]:
    c = trained.case
    setting = (f"logged loss vs recomputed ({c.model}, batch {c.batch} x {c.accumulation}, "
               f"{'padded' if c.padded else 'unpadded'}, logging every {c.logging_steps} step(s))")
    if trained.error or replayed is None:
        return _errors("loss", setting, trained)
    rtol = TOLERANCES["loss"]
    found = compare_logs("loss", setting, trained.logs, replayed.logs, ("loss",), rtol, (" logged", " recomputed"),
                         _rounding())
    if _relative(trained.train_loss, replayed.train_loss) > rtol:
        found.append(Broken("loss", setting, None, f"train_loss {trained.train_loss:.6g} vs mean step loss "
                                                   f"{replayed.train_loss:.6g} ({_bound(rtol)})"))
    return found


def best_checkpoint(observed: TrainRun) -> list[Broken]:
    """The evaluation the metric ranks best first (strictly better than every earlier one) names the best checkpoint
    and its value; train() ends with the weights saved there; save_total_limit keeps that folder; with a patience p,
    training stops at the p-th evaluation in a row that does not improve on the best."""
    c = observed.case
    key = c.best_metric if c.best_metric.startswith("eval_") else f"eval_{c.best_metric}"
    greater = c.greater_is_better if c.greater_is_better is not None else key != "eval_loss"
    setting = (f"checkpoint selection ({c.model}, {'highest' if greater else 'lowest'} {key}, evaluating and "
               f"saving every {c.eval_steps} step(s), save_total_limit {c.save_total_limit}, early-stopping patience "
               f"{c.patience}, lr {c.learning_rate:g})")
    if observed.error:
        return _errors("best_checkpoint", setting, observed)
    values = [(step, float(metrics[key])) for step, metrics in observed.evaluations if key in metrics]
    if not values:
        return [Broken("best_checkpoint", setting, None, f"no evaluation logged {key}")]
    best_step, best, misses, stop = None, None, 0, None
    for index, (step, value) in enumerate(values):
        if best is None or (value > best if greater else value < best):
            best_step, best, misses = step, value, 0
        else:
            misses += 1
        if c.patience is not None and misses >= c.patience and stop is None:
            stop = index
    shown = ", ".join(f"{v:.6g} at {s}" for s, v in values)
    found = []
    if observed.best_metric is None or not math.isclose(observed.best_metric, best, rel_tol=1e-9):
        found.append(Broken("best_checkpoint", setting, best_step, f"best_metric is {observed.best_metric}, but the "
                                                                   f"best {key} is {best:.6g} at step {best_step} "
                                                                   f"({shown})"))
    if observed.best_checkpoint != f"checkpoint-{best_step}":
        found.append(Broken("best_checkpoint", setting, best_step, f"best_model_checkpoint is "
                                                                   f"{observed.best_checkpoint}, expected "
                                                                   f"checkpoint-{best_step} ({key}: {shown})"))
    if best_step not in observed.saved_params:
        found.append(Broken("best_checkpoint", setting, best_step, f"no checkpoint was saved at step {best_step}, "
                                                                   f"the best evaluation (saved at "
                                                                   f"{sorted(observed.saved_params)})"))
    else:
        found += [replace(b, detail=f"the weights after train() are not checkpoint-{best_step}'s: {b.detail}")
                  for b in compare_params("best_checkpoint", setting, observed.params,
                                          observed.saved_params[best_step], best_step, 0.0)]
    if best_step not in observed.on_disk:
        found.append(Broken("best_checkpoint", setting, best_step, f"checkpoint-{best_step} (the best) was deleted; "
                                                                   f"left on disk: {list(observed.on_disk)}"))
    if c.save_total_limit is not None and len(observed.on_disk) > c.save_total_limit + 1:
        found.append(Broken("best_checkpoint", setting, None, f"{len(observed.on_disk)} checkpoints left on disk "
                                                              f"{list(observed.on_disk)}; save_total_limit "
                                                              f"{c.save_total_limit} keeps at most the last "
                                                              f"{c.save_total_limit} and the best"))
    if stop is not None and len(values) != stop + 1:
        found.append(Broken("best_checkpoint", setting, values[stop][0],
                            f"early stopping (patience {c.patience}) should stop training at step {values[stop][0]} "
                            f"after {stop + 1} evaluations; it evaluated {len(values)} time(s) ({shown})"))
    elif stop is None and c.patience is not None and observed.global_step < expected_counters(c)["global_step"]:
        found.append(Broken("best_checkpoint", setting, observed.global_step,
                            f"training stopped at step {observed.global_step} although no {c.patience} evaluations "
                            f"in a row failed to improve ({shown})"))
    return found


def resume_outputs(resumed: TrainRun, straight: TrainRun) -> list[Broken]:
    """What the resumed train() call returns covers its own steps: training_loss is the mean of the losses it
    logged (logging every step), steps/s x runtime its step count, samples/s x runtime its sample count (within
    one optimizer step's examples: versions share the run's samples out by steps), and the final epoch is the
    straight run's."""
    c = resumed.case
    where = resumed.interrupted_at
    setting = (f"resume outputs ({c.model}, checkpoint at step {where} of {straight.global_step}, {c.data.rows} rows, "
               f"batch {c.batch} x {c.accumulation}, {c.epochs} epoch(s))")
    if resumed.error or straight.error or where is None:
        return _errors("resume_outputs", setting, resumed, straight) or [
            Broken("resume_outputs", setting, None, "the run did not resume")]
    own = [e.loss for e in resumed.logs if e.step > where]
    ran = resumed.global_step - where
    found = []
    if own:
        mean = float(np.mean(own))
        slack = _rounding()["loss"] + TOLERANCES["loss"] * abs(mean)
        if not abs(resumed.train_loss - mean) <= slack:
            found.append(Broken("resume_outputs", setting, None,
                                f"training_loss {resumed.train_loss:.6g} is not the mean {mean:.6g} of the {ran} "
                                f"step loss(es) this train() call logged (steps {where + 1}-{resumed.global_step}; "
                                f"the uninterrupted run's training_loss: {straight.train_loss:.6g})"))
    metrics = resumed.train_metrics
    runtime = metrics.get("train_runtime", 0.0)
    steps_run = metrics.get("train_steps_per_second", math.nan) * runtime
    if not abs(steps_run - ran) < 0.5:
        found.append(Broken("resume_outputs", setting, None,
                            f"train_steps_per_second x train_runtime is {steps_run:.4g} steps; this train() call ran "
                            f"{ran} (steps {where + 1}-{resumed.global_step}) of {straight.global_step}"))
    first_part = sum(resumed.windows[:where])
    samples = sum(len(batch) for batch in resumed.batches[first_part:])
    samples_run = metrics.get("train_samples_per_second", math.nan) * runtime
    if not abs(samples_run - samples) < c.batch * c.accumulation:
        found.append(Broken("resume_outputs", setting, None,
                            f"train_samples_per_second x train_runtime is {samples_run:.4g} samples; this train() "
                            f"call trained {samples} (the whole run: "
                            f"{sum(len(batch) for batch in straight.batches)})"))
    for what, a, b in (("state.epoch", resumed.epoch, straight.epoch),
                       ("the logged final epoch", resumed.final_log.get("epoch"), straight.final_log.get("epoch"))):
        if a is None or b is None or not math.isclose(a, b, rel_tol=TOLERANCES["epoch"]):
            found.append(Broken("resume_outputs", setting, resumed.global_step,
                                f"{what} after step {resumed.global_step} is {a}, the uninterrupted run's {b}"))
    return found


def predict_rows(observed: TrainRun) -> list[Broken]:
    """Row i of predict() is row i of the dataset: its label, and the logits of a forward of that row alone (within
    float32 rounding: a padded batch blocks its matrix products differently); all rows come back, or with
    dataloader_drop_last those of the full eval batches; a second predict() on the same weights is bit-identical."""
    c = observed.case
    total = c.predict_data.rows
    rows = total - total % c.eval_batch if c.drop_last else total
    setting = (f"predict() rows ({c.model}, {total} rows of length {c.predict_data.min_length}-"
               f"{c.predict_data.max_length}, eval batch {c.eval_batch}, eval_accumulation_steps "
               f"{c.eval_accumulation}, drop_last {c.drop_last}, group_by_length {c.group_by_length})")
    if observed.error or len(observed.predicted) < 2 or observed.alone is None:
        return _errors("predict_rows", setting, observed) or [
            Broken("predict_rows", setting, None, "predict() did not run")]
    first, second = observed.predicted
    found = []
    logits = first.predictions.reshape(len(first.predictions), -1)
    if len(logits) != rows:
        found.append(Broken("predict_rows", setting, None, f"predict() returned {len(logits)} rows for {total} "
                                                           f"(expected {rows})"))
    labels = build_rows(c.predict_data, c.num_labels).labels
    alone = observed.alone.reshape(total, -1)
    for i, got in enumerate(logits[:rows]):
        if not np.allclose(got, alone[i], rtol=1e-4, atol=1e-4):
            match = int(np.argmin(np.abs(alone - got).max(axis=1)))
            found.append(Broken("predict_rows", setting, None,
                                f"predictions row {i} are not dataset row {i}'s logits "
                                f"{np.round(alone[i], 4).tolist()} but {np.round(got, 4).tolist()}"
                                + (f", those of row {match}" if np.allclose(got, alone[match], 1e-4, 1e-4) else "")))
            break
    if first.label_ids is None or not np.allclose(first.label_ids.reshape(-1)[:rows], labels[:rows]):
        shown = None if first.label_ids is None else first.label_ids.reshape(-1)[:rows].tolist()
        found.append(Broken("predict_rows", setting, None, f"label_ids {shown} are not the dataset's labels "
                                                           f"{labels[:rows]} in order"))
    same = (np.array_equal(first.predictions, second.predictions)
            and (first.label_ids is None) == (second.label_ids is None)
            and (first.label_ids is None or np.array_equal(first.label_ids, second.label_ids))
            and first.metrics.get("test_loss") == second.metrics.get("test_loss"))
    if not same:
        found.append(Broken("predict_rows", setting, None, "two predict() calls on the same weights differ (test_loss "
                                                           f"{first.metrics.get('test_loss')} vs "
                                                           f"{second.metrics.get('test_loss')})"))
    return found


def documented_decay(observed: TrainRun) -> frozenset[str]:
    """The parameters weight decay applies to: all but biases and LayerNorm weights."""
    return frozenset(n for n in observed.params if not n.endswith("bias") and n not in observed.norm_params)


def weight_decay(observed: TrainRun) -> list[Broken]:
    """Optimizer groups and get_decay_parameter_names match the documented set; with a zero loss every parameter
    ends at p0 * prod(1 - lr_t * wd) if decayed, else p0 exactly."""
    c = observed.case
    setting = (f"weight decay ({c.model}, wd {c.weight_decay:g}, {c.optimizer}, zero loss over "
               f"{observed.global_step} steps)")
    if observed.error:
        return _errors("weight_decay", setting, observed)
    want = documented_decay(observed)
    found = []
    decayed = frozenset().union(*(names for wd, names in observed.decay_groups if wd > 0))
    checked = [("get_decay_parameter_names", observed.declared_decay)]
    checked += [("the optimizer's decayed group", decayed)] if c.weight_decay > 0 else []  # wd 0: no such group
    for what, names in checked:
        extra, missing = sorted(names - want), sorted(want - names)
        wrong = [f"decays {len(extra)} bias/LayerNorm parameter(s) such as {extra[0]}"] if extra else []
        wrong += [f"leaves out {len(missing)} such as {missing[0]}"] if missing else []
        if wrong:
            found.append(Broken("weight_decay", setting, None, f"{what} differs from the documented set: "
                                                               f"{' and '.join(wrong)}"))
    return found + decay_law("weight_decay", setting, observed, want)


def decay_law(invariant: str, setting: str, observed: TrainRun, decayed: frozenset[str]) -> list[Broken]:
    """With a zero loss, the parameters after each step s are p0 * prod_{t<=s}(1 - lr_t * wd) if in `decayed` (and
    wd > 0), else exactly p0, where lr_t is the rate the optimizer applied at step t (read from its parameter group,
    so neither the logged rate nor the schedule enters this law). Uses the snapshots each step started from when
    kept, else the final parameters."""
    c = observed.case
    after = [*observed.snapshots[1:], observed.params] if observed.snapshots else [observed.params]
    first = len(observed.step_lrs) - len(after) + 1  # the step the first compared parameters follow
    factor, rtol = np.float32(1.0), TOLERANCES["weight_decay"]
    for step, lr in enumerate(observed.step_lrs, 1):
        factor = factor * np.float32(1.0 - lr * c.weight_decay)
        if step >= first:
            expected = {n: p0 * factor if n in decayed and c.weight_decay > 0 else p0
                        for n, p0 in observed.initial.items()}
            broken = compare_params(invariant, setting, after[step - first], expected, step, rtol)
            if broken:
                return broken
    return []


def compute_loss(observed: TrainRun) -> list[Broken]:
    """One compute_loss call per micro-batch, each given None or its step's label count as num_items_in_batch (None
    where the model takes no loss kwargs); the loss it returned (scaled by 0) is what was optimized, so parameters
    change by weight decay alone."""
    c = observed.case
    setting = f"Trainer subclass compute_loss ({c.model}, loss x {c.loss_scale:g}, batch {c.batch} x {c.accumulation})"
    if observed.error:
        return _errors("compute_loss", setting, observed)
    calls, found = observed.loss_calls, []
    if [call.rows for call in calls] != list(observed.batches):
        found.append(Broken("compute_loss", setting, None, f"{len(calls)} compute_loss call(s) for "
                                                           f"{len(observed.batches)} micro-batches"))
    start = 0
    for step, window in enumerate(observed.windows, 1):
        labels = sum(len(rows) for rows in observed.batches[start:start + window])
        given = {call.num_items for call in calls[start:start + window]}
        if not given <= {labels} and given != {None}:
            found.append(Broken("compute_loss", setting, step, f"num_items_in_batch at step {step} was "
                                                               f"{sorted(given, key=str)}; the step has {labels} "
                                                               "labels"))
            break
        start += window
    if c.loss_scale == 0:
        found += decay_law("compute_loss", setting, observed, documented_decay(observed))
    return found


def dtype(observed: TrainRun, reference: TrainRun) -> list[Broken]:
    """bf16 autocast: float32 parameters, bfloat16 Linear outputs; bf16 weights: bfloat16 parameters and outputs;
    the first loss (same initial model) within the bf16 tolerance of the float32 run's."""
    c = observed.case
    setting = f"precision {c.precision} ({c.model}) vs fp32"
    if observed.error or reference.error:
        return _errors("dtype", setting, observed, reference)
    found = [*_in_precision(observed, setting, ""),
             *_in_precision(reference, setting, f"the {reference.case.precision} run after it: ")]
    return found + compare_logs("dtype", setting, observed.logs[:1], reference.logs[:1], ("loss",),
                                TOLERANCES["dtype_first_loss"], atol=_rounding())


def _in_precision(observed: TrainRun, setting: str, which: str) -> list[Broken]:
    """Parameters in the dtype the precision asks for after every step, and Linear outputs in its compute dtype."""
    c = observed.case
    params = "bfloat16" if c.precision == "bf16-weights" else "float32"
    forward = {{"fp32": "float32", "fp16": "float16"}.get(c.precision, "bfloat16")}
    found = []
    for step, dtypes in enumerate((*observed.step_dtypes, observed.dtypes), 1):
        wrong = sorted(n for n, d in dtypes.items() if d != params)
        if wrong:
            step = min(step, observed.global_step)
            found.append(Broken("dtype", setting, step, f"{which}{len(wrong)} parameter(s) are {dtypes[wrong[0]]} "
                                                        f"after step {step} (e.g. {wrong[0]}), expected {params}"))
            break
    if set(observed.forward_dtypes) != forward:
        found.append(Broken("dtype", setting, None, f"{which}training forwards ran in "
                                                    f"{sorted(observed.forward_dtypes)}, expected {sorted(forward)}"))
    return found
