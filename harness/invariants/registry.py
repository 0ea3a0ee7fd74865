"""Every train() invariant as one object, registered once: its wording, witness case, check, the run it compares
with, its hypothesis strategy, its share of the drawn examples and the CUDA precisions it runs in.

The suite (suites/test_training.py), the driver (`verify`), the defect registry and the fault tests read everything
about an invariant from `INVARIANTS[name]`. Adding one = a check in invariants.py, a strategy in strategies.py, and
one `Invariant(...)` here (+ its injected fault in tests/test_training_faults.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.contracts.cases import DataSpec
from harness.base.registry import Registry
from harness.invariants import checks
from harness.invariants.cases import PRECISIONS, Broken, TrainCase
from harness.invariants.tokenization import WITNESS as TOKENIZER_WITNESS
from harness.invariants.tokenization import TokenizerCase, check_tokenizer


@dataclass(frozen=True)
class Invariant:
    name: str
    wording: str  # what holds, in one sentence (test ids, failure messages, the verdict table)
    witness: TrainCase | TokenizerCase  # the fixed case the suite runs first and the fault tests break
    # observations -> breaks: (observed) alone against formulas, (observed, reference) with a partner or a replay;
    # a non-training invariant's check takes its case
    check: Callable[..., list[Broken]]
    partner: Callable[[TrainCase], TrainCase] | None = None  # the second run it compares a case with
    replayed: bool = False  # compares with the replay of the observation outside the Trainer (driver.replay)
    trains: bool = True  # False: checks without training (its check takes the case)
    strategy: str = ""  # the function of harness.invariants.strategies drawing its cases (imports hypothesis)
    share: float = 0.2  # its drawn cases, as a share of the hypothesis profile's max_examples
    cuda_precisions: tuple[str, ...] = ()  # the precisions its witness trains in on CUDA; (): not run there
    fp32_only: bool = False  # compares two runs' numbers at float32 tolerances: drawn and your cases stay fp32

    def __post_init__(self) -> None:
        if not set(self.cuda_precisions) <= set(PRECISIONS):
            raise ValueError(f"invariant {self.name}: unknown precision in {self.cuda_precisions}; "
                             f"known: {', '.join(PRECISIONS)}")

    @property
    def alone(self) -> bool:
        """Checked on one observation, against the documented formulas."""
        return self.partner is None and not self.replayed

    def judge(self, observed: object, reference: object | None) -> list[Broken]:
        """Every break between `observed` and its reference (the partner run, the replay, or None)."""
        return self.check(observed) if self.alone else self.check(observed, reference)


def _one_batch(c: TrainCase) -> TrainCase:
    return replace(c, batch=c.batch * c.accumulation, accumulation=1)


def _straight(c: TrainCase) -> TrainCase:
    return replace(c, interrupt_at=None)


# Counting, ordering, schedule and decay checks do not depend on rounding, so on CUDA they run under fp16 and bf16
# autocast too; the checks that compare two runs' numbers carry float32 tolerances and run in fp32. Determinism is
# not run on CUDA: its atomic-add kernels (embedding backward) are not bit-reproducible without deterministic mode.
ALL_AUTOCAST = ("fp32", "fp16", "bf16")

# Witnesses: clean (or broken only by a known defect) on a sound Trainer; rows are multiples of the batch.
INVARIANTS: Registry[Invariant] = Registry("train() invariant", (
    Invariant(
        "accumulation",
        "(batch b x accumulation k) and (batch b*k x 1) over the same examples log the same loss and "
        "grad norm at every step and end with the same parameters, padded or not",
        witness=TrainCase(data=DataSpec(rows=12, seed=1, min_length=2, max_length=14), batch=2, accumulation=3,
                     epochs=2),
        check=checks.accumulation,
        partner=_one_batch,
        strategy="accumulation_cases", share=0.24, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "steps",
        "global_step, the final epoch, evaluations, log entries and saves follow the documented formulas",
        witness=TrainCase(data=DataSpec(rows=10, seed=2, min_length=2), batch=2, accumulation=2, epochs=2, logging_steps=2,
                     eval_steps=2, save_steps=4),
        check=checks.steps,
        strategy="step_cases", share=0.4, cuda_precisions=ALL_AUTOCAST),
    Invariant(
        "schedule",
        "the logged learning rate follows the scheduler's formula at every step and ends where it should",
        witness=TrainCase(model="tiny-electra", scheduler="cosine", warmup_steps=2, epochs=3),
        check=checks.schedule,
        strategy="schedule_cases", share=0.24, cuda_precisions=ALL_AUTOCAST),
    Invariant(
        "resume",
        "N steps, a checkpoint, and a resumed Trainer for the rest equal the straight run (losses, learning "
        "rates, grad norms, parameters and their dtypes)",
        witness=TrainCase(model="tiny-roberta", interrupt_at=2, epochs=2, dropout=True),
        check=checks.resume,
        partner=_straight,
        strategy="resume_cases", share=0.2, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "determinism",
        "the same case twice on CPU is bit-identical (losses, grad norms, parameters, example order)",
        witness=TrainCase(model="tiny-distilbert", dropout=True, epochs=2),
        check=checks.determinism,
        partner=lambda c: c,
        strategy="determinism_cases", share=0.16, fp32_only=True),
    Invariant(
        "data_seed",
        "data_seed changes only the order of examples: each epoch sees the same multiset, and the same "
        "data_seed gives the same order whatever the seed",
        witness=TrainCase(model="tiny-albert", epochs=2, data_seed=5, alt_data_seed=5),
        check=checks.data_seed,
        partner=lambda c: replace(c, seed=c.seed + 1, data_seed=c.alt_data_seed),
        strategy="data_seed_cases", share=0.16, cuda_precisions=ALL_AUTOCAST),
    Invariant(
        "loss",
        "each logged loss is the mean per-example loss of its steps' examples, recomputed outside the Trainer "
        "with the parameters the step started from; train_loss is the mean of all step losses",
        witness=TrainCase(model="tiny-deberta-v2", data=DataSpec(rows=16, seed=3, min_length=2, max_length=14), batch=2,
                     accumulation=2, logging_steps=2, snapshots=True),
        check=checks.loss,
        replayed=True,
        strategy="loss_cases", share=0.2, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "weight_decay",
        "weight decay goes to exactly the documented parameters (not biases, not LayerNorm weights), as "
        "p * (1 - lr * wd) per step when the loss is zero",
        witness=TrainCase(loss_scale=0.0, weight_decay=0.1, learning_rate=1e-2, snapshots=True),
        check=checks.weight_decay,
        strategy="weight_decay_cases", share=0.16, cuda_precisions=ALL_AUTOCAST),
    Invariant(
        "compute_loss",
        "an overriding compute_loss(model, inputs, return_outputs, num_items_in_batch) is called once per "
        "micro-batch with the step's label count (or None), and its loss is the one optimized",
        witness=TrainCase(model="tiny-electra", loss_scale=0.0, batch=2, accumulation=2, snapshots=True),
        check=checks.compute_loss,
        strategy="zero_loss_cases", share=0.16, cuda_precisions=ALL_AUTOCAST),
    Invariant(
        "dtype",
        "parameters stay in the dtype asked (float32 masters under bf16 autocast, bfloat16 when loaded so), "
        "the training forward runs in the precision asked, and so does a float32 run after it in the process",
        witness=TrainCase(precision="bf16"),
        check=checks.dtype,
        partner=lambda c: replace(c, precision="fp32"),
        strategy="dtype_cases", share=0.16, cuda_precisions=("fp16", "bf16", "bf16-weights")),
    Invariant(
        "best_checkpoint",
        "with load_best_model_at_end, the best checkpoint is the first evaluation the metric ranks best, "
        "train() ends with that checkpoint's weights, save_total_limit keeps it, and early stopping "
        "stops after `patience` evaluations without improvement",
        witness=TrainCase(model="tiny-electra", learning_rate=2e-2, epochs=3, eval_steps=2, best_metric="eval_loss",
                     save_total_limit=1, patience=2, seed=4),
        check=checks.best_checkpoint,
        strategy="best_checkpoint_cases", share=0.2, cuda_precisions=ALL_AUTOCAST),
    Invariant(
        "resume_outputs",
        "a resumed train() returns and logs what its own part of the run did: training_loss is the mean "
        "of its steps' losses, steps/s and samples/s count its steps and samples, and the final epoch "
        "is the uninterrupted run's",
        witness=TrainCase(data=DataSpec(rows=10, seed=8, min_length=2, max_length=12), batch=2, epochs=2,
                     interrupt_at=5),
        check=checks.resume_outputs,
        partner=_straight,
        strategy="resume_output_cases", share=0.16, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "predict_rows",
        "predict() row i is dataset row i (logits of a lone forward, its label), every row comes back "
        "(a drop_last batch excepted), and two predict() calls on the same weights agree exactly, "
        "under every sampler, eval batch and eval_accumulation_steps setting",
        witness=TrainCase(model="tiny-roberta", data=DataSpec(rows=8, seed=9, min_length=2, max_length=16),
                     predict_data=DataSpec(rows=11, seed=10, min_length=2, max_length=24), eval_batch=3,
                     eval_accumulation=2),
        check=checks.predict_rows,
        strategy="predict_cases", share=0.24, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "loss_options",
        "accumulation equivalence holds for every loss path: label_smoothing_factor, an overriding "
        "compute_loss that returns a mean, class-weighted per-example losses",
        witness=TrainCase(model="tiny-distilbert", data=DataSpec(rows=12, seed=11, min_length=2, max_length=14),
                     batch=2, accumulation=3, loss_path="label_smoothing"),
        check=checks.loss_options,
        partner=_one_batch,
        strategy="loss_option_cases", share=0.2, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "collation",
        "DataCollatorWithPadding (pad_to_multiple_of or not) and default_data_collator, with labels as "
        "Python ints, numpy integers or tensors, give the model int64 labels (float32 for regression), the "
        "task's problem_type, and the same training as the padding collator with int labels",
        witness=TrainCase(model="tiny-albert", num_labels=3, collator="default", label_type="numpy"),
        check=checks.collation,
        partner=lambda c: replace(c, collator="padding", label_type="int"),
        strategy="collation_cases", share=0.2, cuda_precisions=("fp32",), fp32_only=True),
    Invariant(
        "local_tokenizer",
        "a tokenizer built from a vocabulary file (as offline users build one) tokenizes the task's "
        "text as the checkpoint's own does, with few unknown pieces, and its ids survive a decode",
        witness=TOKENIZER_WITNESS, check=check_tokenizer, trains=False,
        strategy="tokenizer_cases", share=0.4),
))


def format_failure(invariant: str, case: TrainCase | TokenizerCase, broken: list[Broken]) -> str:
    lines = [f"{len(broken)} invariant break(s) for {getattr(case, 'model', 'a vocab-file tokenizer')} "
             f"({INVARIANTS[invariant].wording}):"]
    lines += [f"  {b}" for b in broken]
    lines += ["reproduce with:", *(f"  {line}" for line in case.reproduce_snippet(invariant).splitlines())]
    return "\n".join(lines)
