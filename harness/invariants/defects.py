"""Known upstream train() defects, per transformers version range, and what a suite test makes of them.

A test whose invariant breaks on a version a defect covers is an expected failure that names the defect; a covered
invariant that holds means the defect no longer reproduces there, which fails the test so the range gets narrowed.
Adding a defect is one `Defect(...)` line in DEFECTS (a defect breaking two invariants has a line for each).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from harness.contracts.cases import DataSpec
from harness.core.config import RunConfig
from harness.invariants.cases import Broken, TrainCase
from harness.invariants.registry import INVARIANTS
from harness.invariants.tokenization import TEXTS, TokenizerCase


@dataclass(frozen=True)
class Trigger:
    """The settings under which a defect bites a fine-tune: `when` says it in words, `applies` tests a RunConfig,
    `possible` your stated TrainingArguments (for what a cell never trains but your fine-tune may do: resuming from
    the checkpoints it saves). Conservative: a setting that may trigger it counts (a verdict must not call a
    fine-tune safe on a guess)."""

    when: str
    applies: Callable[[RunConfig], bool]
    possible: Callable[[Mapping[str, Any]], bool] = lambda stated: False

    def __call__(self, config: RunConfig, stated: Mapping[str, Any] | None = None) -> bool:
        return self.applies(config) or (stated is not None and self.possible(stated))


def saves_checkpoints(stated: Mapping[str, Any]) -> bool:
    """Whether TrainingArguments written so save checkpoints (save_strategy's default "steps" does)."""
    return str(stated.get("save_strategy", "steps")).lower() != "no"


ACCUMULATING = Trigger("gradient_accumulation_steps > 1", lambda c: c.gradient_accumulation_steps > 1)
RESUMING = Trigger("resume_from_checkpoint (possible whenever checkpoints are saved: save_strategy not 'no')",
                   lambda c: c.resume_from_checkpoint is not None, saves_checkpoints)
BF16 = Trigger("bf16", lambda c: c.precision == "bf16")
GROUPED = Trigger("group_by_length (train_sampling_strategy='group_by_length' in 5.x)", lambda c: c.group_by_length)
LOADS_BEST = Trigger("load_best_model_at_end", lambda c: False,
                     lambda stated: bool(stated.get("load_best_model_at_end", False)))
# the harness's cells always collate with DataCollatorWithPadding, so no cell triggers it: your own script may
NUMPY_LABELS = Trigger("default_data_collator over examples whose label is a numpy integer (e.g. a dataset in numpy "
                       "format)", lambda c: False)
SCHEDULED = Trigger("a learning-rate schedule that changes the rate (not constant)",
                    lambda c: c.lr_scheduler_type != "constant" or bool(c.warmup_steps or c.warmup_ratio))

# What the entries below say, once per upstream defect (a defect breaking two invariants has two entries).
_GA_KWARGS = {"link": "https://github.com/huggingface/transformers/issues/47688",
              "summary": "sequence-classification heads declare **kwargs but drop num_items_in_batch, so the Trainer "
                         "neither divides by the accumulation steps nor lets the model normalise: with accumulation k "
                         "the loss, its gradient and the logged loss are the sum of the k micro-batch means (k times "
                         "too large)",
              "trigger": ACCUMULATING,
              "workaround": "train with a Trainer subclass that computes the mean loss itself and sets "
                            "model_accepts_loss_kwargs = False (e.g. harness.core.trainers:ExplicitLossTrainer), or "
                            "stay on 4.x"}
_GA_MEANS = {"link": "https://github.com/huggingface/transformers/issues/37766",
             "summary": "for a model without loss kwargs the Trainer averages micro-batch means (dividing by the "
                        "window's micro-batches), so a window with a partial micro-batch weights its examples "
                        "unequally: the loss and its gradient are not the mean over the window's examples",
             "trigger": ACCUMULATING,
             "workaround": "a training set whose size is a multiple of batch x accumulation steps"}
_BF16_ENV = {"link": "https://github.com/huggingface/transformers/issues/29510",
             "summary": "TrainingArguments(bf16=True) exports ACCELERATE_MIXED_PRECISION=bf16 and later "
                        "TrainingArguments read it back, so every later Trainer in the process trains under bf16 "
                        "autocast although bf16=False (fixed in 5.0 by PR #41697)",
             "trigger": BF16,
             "workaround": "one bf16 Trainer per process, or unset ACCELERATE_MIXED_PRECISION before the next one"}
_STEPS_FLOOR = {"link": "https://github.com/huggingface/transformers/issues/36297",
                "summary": "steps per epoch are planned as floor(batches / accumulation), so with a partial last "
                           "accumulation window max_steps is too small and training stops before the last epoch "
                           "ends, and a resumed run counts its finished epochs with the same floor and skips the rest "
                           "of the epoch it was in (both from set_initial_training_values; fixed by PR #37923; "
                           "4.51.3's source still floors, 4.52.1's does not)",
                "trigger": ACCUMULATING,
                "workaround": "batches per epoch a multiple of gradient_accumulation_steps, or max_steps"}
_GA_ACROSS_EPOCHS = {"link": "https://github.com/huggingface/transformers/issues/33671",
                     "summary": "an optimizer step is taken when the micro-batches counted since training began "
                                "(total_batched_samples) fill a window, so an epoch's partial last window does not "
                                "step: its gradients are added to the next epoch's first micro-batches and every "
                                "later step and state.epoch shift (fixed by PR #33673: 4.46.3's trainer.py counts "
                                "across epochs, 4.47.0's steps on (step + 1) % accumulation or the epoch's end)",
                     "trigger": ACCUMULATING,
                     "workaround": "batches per epoch a multiple of gradient_accumulation_steps"}
_RNG_WEIGHTS_ONLY = {"link": "https://github.com/huggingface/transformers/issues/34631",
                     "summary": "resuming loads rng_state.pth with torch.load's default weights_only, which torch 2.6 "
                                "made True, and the numpy RNG state in it is not an allowed global: train() raises "
                                "UnpicklingError (trainer.py _load_rng_state; fixed by PR #34632, whose "
                                "safe_globals() is in 4.47.0's trainer.py and not in 4.46.3's)",
                     "trigger": RESUMING,
                     "workaround": "transformers >= 4.47 or torch < 2.6"}
_LEGACY_NORM_NAMES = {"link": "https://github.com/huggingface/transformers/pull/42396",
                      "summary": "a model loaded with from_pretrained keeps every conversion of its mapping, the "
                                 "legacy LayerNorm.gamma/beta renaming included, and save_pretrained reverses them "
                                 "all, so checkpoints store LayerNorm.weight/bias as gamma/beta; Trainer resumes with "
                                 "load_state_dict(strict=False), which leaves every LayerNorm at its pre-training "
                                 "value (the reverse-on-save came with PR #42396; 5.6.0 keeps only the conversions "
                                 "a load used, 5.5.4 all; no upstream issue found)",
                      "trigger": RESUMING,
                      "workaround": "transformers >= 5.6, or resume with model weights loaded by from_pretrained"}
_LR_NEXT_STEP = {"link": "https://github.com/huggingface/transformers/issues/35942",
                 "summary": "the scheduler steps before the log, so the logged learning rate is the next step's, "
                            "not the one just applied (fixed by PR #36973; 4.50.3's source logs after the step, "
                            "4.51.3's before)",
                 "trigger": SCHEDULED,
                 "workaround": "read the rate from the optimizer or the scheduler, not the log"}

_EVAL_GROUPED = {"link": "https://github.com/huggingface/transformers/pull/33514",
                 "summary": "with group_by_length the evaluation and prediction loaders use the length-grouped "
                            "(shuffling) sampler too, so predict() returns predictions and label_ids in a shuffled "
                            "order: row i is not dataset row i, and code that writes predictions back next to its "
                            "rows pairs them wrongly (metrics stay right: predictions and labels move together); "
                            "before PR #48025 two calls shuffle differently. Introduced by PR #33514 (2024-09); no "
                            "upstream issue found",
                 "trigger": GROUPED,
                 "workaround": "predict() with a Trainer whose arguments do not group by length, or sort the output "
                               "back by reading the sampler's order"}
_RESUME_METRICS = {"link": "https://github.com/huggingface/transformers/blob/v5.18.0/src/transformers/trainer.py",
                   "summary": "a resumed train() divides the loss summed over its own steps by the global step count "
                              "(training_loss too small by the share of steps done before the checkpoint) and reports "
                              "steps/s and samples/s for the whole run's steps and samples over its own runtime "
                              "(fixed in 5.19.0, whose _finalize_training counts global_step - _initial_global_step; "
                              "5.18.0's source does not; no upstream issue found: the link is the defective source)",
                   "trigger": RESUMING,
                   "workaround": "recompute training_loss from log_history, and throughput from the steps after the "
                                 "checkpoint"}
_NUMPY_LABEL_FLOAT = {"link": "https://github.com/huggingface/transformers/blob/v5.21.1/src/transformers/data/"
                              "data_collator.py",
                      "summary": "default_data_collator types labels long only for Python ints, so numpy integer "
                                 "labels become float32 and a classification head with num_labels > 1 takes them "
                                 "for multi-label targets (BCE on mismatched shapes: train() raises) (fixed in "
                                 "5.22.0, which also accepts np.integer; 5.21.1's source does not; no upstream issue "
                                 "found: the link is the defective source)",
                      "trigger": NUMPY_LABELS,
                      "workaround": "labels as Python ints (int(label)), or DataCollatorWithPadding"}

_RESUME_PARTIAL_WINDOW = {"link": "https://github.com/huggingface/transformers/blob/v4.56.2/src/transformers/trainer.py",
                          "summary": "a run resumed inside an epoch whose last accumulation window is partial skips "
                                     "that window: the resumed Trainer stops one optimizer step short of the "
                                     "straight run (global_step and the final parameters differ). It came with the "
                                     "steps-per-epoch fix of 4.52 and is gone in 4.57 (measured: 4.52.1 ... 4.56.2 "
                                     "stop short, 4.57.6 does not; no upstream issue found: the link is the "
                                     "defective source)",
                          "trigger": Trigger("resume_from_checkpoint with gradient_accumulation_steps > 1 (possible "
                                             "whenever checkpoints are saved)",
                                             lambda c: c.resume_from_checkpoint is not None
                                             and c.gradient_accumulation_steps > 1, saves_checkpoints),
                          "workaround": "batches per epoch a multiple of gradient_accumulation_steps"}
_VOCAB_FILE_IGNORED = {"link": "https://github.com/huggingface/transformers/blob/v5.25.0/src/transformers/models/bert/"
                               "tokenization_bert.py",
                       "summary": "BertTokenizerFast (in 5.x an alias of BertTokenizer) takes no vocab_file: "
                                  "BertTokenizerFast(vocab_file=path) puts it in **kwargs, only from_pretrained maps "
                                  "it to vocab=, and the tokenizer silently gets a 5-piece default vocabulary, so "
                                  "every word is [UNK] (no upstream issue found: the link is the defective source)",
                       "trigger": Trigger("a BERT tokenizer built from a vocabulary file with vocab_file=",
                                          lambda c: False),
                       "workaround": "BertTokenizer(vocab=path), or from_pretrained of the folder"}
_NO_TOKEN_TYPES = {"link": "https://github.com/huggingface/transformers/blob/v5.25.0/src/transformers/models/bert/"
                           "tokenization_bert_legacy.py",
                   "summary": "the Python BERT tokenizer (BertTokenizerLegacy) lists model_input_names without "
                              "token_type_ids, so a sentence pair comes back without them and BERT reads the second "
                              "sentence as segment 0 (no upstream issue found: the link is the defective source)",
                   "trigger": Trigger("the Python (legacy) BERT tokenizer on sentence pairs", lambda c: False),
                   "workaround": "return_token_type_ids=True, or the default (Rust) tokenizer"}

_SMOOTHING_GA = {"link": "https://github.com/huggingface/transformers/issues/46731",
                 "summary": "with label_smoothing_factor the Trainer's LabelSmoother takes the mean over its own "
                            "micro-batch and ignores num_items_in_batch, while the Trainer, trusting the model to "
                            "normalise (model_accepts_loss_kwargs), does not divide by the accumulation steps: "
                            "the gradient is k times too large under accumulation k (in 4.46-4.47 the logged loss "
                            "is still right, in 5.0-5.14 it is k times too large too; fixed by PR #47261 in 5.15; "
                            "measured on a DistilBERT head: broken 4.46.3, 4.47.0, 5.0.0 ... 5.14.1, right 4.48.3 "
                            "... 4.57.6, where the Trainer divides for heads without loss kwargs, and 5.15.1 on)",
                 "trigger": Trigger("label_smoothing_factor > 0 with gradient_accumulation_steps > 1",
                                    lambda c: c.label_smoothing_factor > 0 and c.gradient_accumulation_steps > 1),
                 "workaround": "no label smoothing under accumulation, or one batch of batch x accumulation rows"}
_BF16_FRESH_HEAD = {"link": "https://github.com/huggingface/transformers/issues/46002",
                    "summary": "from_pretrained(dtype=torch.bfloat16) leaves the weights it initialises fresh (the "
                               "classification head of a fine-tune) uninitialised: NaN or garbage, so the first "
                               "loss is NaN or huge (measured on 5.8.1 for the tiny BERT, RoBERTa, DistilBERT, "
                               "ELECTRA and DeBERTa heads, not ALBERT's; 5.7.0 and 5.9.0 are right)",
                    "trigger": Trigger("loading the model in bfloat16 or float16 (dtype= / torch_dtype=)",
                                       lambda c: False),
                    "workaround": "load in float32 and train with bf16=True, or transformers != 5.8"}


@dataclass(frozen=True)
class Defect:
    """One upstream defect: the invariant it breaks, the transformers versions it is known on, and where it is
    tracked. `versions` is a packaging SpecifierSet string such as ">=4.46,<4.48"."""

    id: str
    invariant: str
    versions: str
    summary: str
    link: str
    trigger: Trigger | None = None  # the settings it bites under; None: every fine-tune
    workaround: str = ""
    case: TrainCase | TokenizerCase | None = None  # a case that shows it, run first by the suite; None: any break counts

    def __post_init__(self) -> None:
        if self.invariant not in INVARIANTS:
            raise ValueError(f"defect {self.id}: unknown invariant {self.invariant!r}; known: {', '.join(INVARIANTS)}")
        SpecifierSet(self.versions)  # refuses a malformed range when the registry is imported

    def covers(self, version: str | Version) -> bool:
        return SpecifierSet(self.versions).contains(Version(str(version)), prereleases=True)

    def __str__(self) -> str:
        return f"{self.id} (transformers {self.versions}, {self.link}): {self.summary}"

    @property
    def when(self) -> str:
        return self.trigger.when if self.trigger else "every fine-tune"

    def affects(self, configs: Iterable[RunConfig], stated: Mapping[str, Any] | None = None) -> list[RunConfig]:
        """The fine-tunes among `configs` whose settings trigger it (`stated`: the TrainingArguments they were
        written with, for what a cell does not train)."""
        return [c for c in configs if self.trigger is None or self.trigger(c, stated)]


# Cases that show them: two full micro-batches per window; a window of a 4-row and a 1-row micro-batch; a bf16 run
# (the fp32 partner runs after it).
_FULL_WINDOWS = TrainCase(data=DataSpec(rows=8, seed=4, min_length=2, max_length=9), batch=2, accumulation=2,
                     snapshots=True)
_PARTIAL_WINDOW = TrainCase(model="tiny-electra", data=DataSpec(rows=5, seed=4, min_length=2, max_length=9), batch=4,
                       accumulation=2, snapshots=True)
_BF16_FIRST = TrainCase(precision="bf16")
# Resume cases: any checkpoint (4.46: the RNG state does not load); a BERT checkpoint (LayerNorm names); 5 batches
# in windows of 3, whose floor plans one step per epoch, so a resume after step 1 starts the second epoch early.
_ANY_RESUME = TrainCase(epochs=2, interrupt_at=1)
_NORM_RESUME = TrainCase(model="tiny-bert", epochs=2, interrupt_at=2)
_FLOORED_RESUME = TrainCase(data=DataSpec(rows=5, seed=5, min_length=2, max_length=9), batch=1, accumulation=3, epochs=2,
                       interrupt_at=1)
# 5 micro-batches in windows of 2, max_steps 4: step 3 takes the epoch's last micro-batch alone, so the run ends
# 2/5 into the second epoch; a window spanning epochs ends it 3/5 in.
_EPOCH_CROSSING = TrainCase(data=DataSpec(rows=5, seed=6, min_length=2, max_length=9), batch=1, accumulation=2,
                       max_steps=4)
# predict() with grouping by length; a resume half-way, logging every step; numpy labels through default collation;
# a custom mean loss over full windows; a best checkpoint loaded back (BERT: legacy LayerNorm names)
_GROUPED_PREDICT = TrainCase(model="tiny-roberta", data=DataSpec(rows=8, seed=9, min_length=2, max_length=16),
                        predict_data=DataSpec(rows=11, seed=10, min_length=2, max_length=24), eval_batch=3,
                        group_by_length=True)
_HALF_RESUMED = TrainCase(data=DataSpec(rows=10, seed=8, min_length=2, max_length=12), batch=2, epochs=2, interrupt_at=5)
_NUMPY_DEFAULT = TrainCase(model="tiny-albert", num_labels=3, collator="default", label_type="numpy")
_OWN_MEAN_LOSS = TrainCase(model="tiny-distilbert", data=DataSpec(rows=12, seed=11, min_length=2, max_length=14),
                      batch=2, accumulation=3, loss_path="custom_mean")
_VOCAB_FILE = TokenizerCase(backend="fast", texts=TEXTS[:8], keyword="vocab_file")
_LEGACY_PAIRS = TokenizerCase(backend="slow", texts=TEXTS[:8], pair=True, keyword="vocab_file")
_SMOOTHED = TrainCase(model="tiny-distilbert", data=DataSpec(rows=12, seed=11, min_length=2, max_length=14), batch=2,
                 accumulation=3, loss_path="label_smoothing")
_BF16_WEIGHTS = TrainCase(model="tiny-roberta", precision="bf16-weights")
_BEST_BERT = TrainCase(model="tiny-bert", learning_rate=2e-2, epochs=3, eval_steps=2, best_metric="eval_loss", seed=4)

# Measured: the 5.x entry on 5.24.0 and 5.0.0 (all six tiny families); the other 4.x entries on 4.57.6, 4.50.3 and
# 4.46.3 (`harness replay`); the LayerNorm-names entry on 5.0.0 and 5.5.4, gone on 5.6.0; the other bounds read in
# the released wheels (trainer.py, core_model_loading.py).
DEFECTS: tuple[Defect, ...] = (
    Defect("ga-loss-kwargs-dropped", "accumulation", ">=5.0", **_GA_KWARGS, case=_FULL_WINDOWS),
    Defect("ga-loss-kwargs-dropped", "loss", ">=5.0", **_GA_KWARGS, case=_FULL_WINDOWS),
    Defect("ga-mean-of-micro-batch-means", "accumulation", ">=4.46,<5.0", **_GA_MEANS, case=_PARTIAL_WINDOW),
    Defect("ga-mean-of-micro-batch-means", "loss", ">=4.46,<5.0", **_GA_MEANS, case=_PARTIAL_WINDOW),
    Defect("bf16-env-leak", "dtype", ">=4.46,<5.0", **_BF16_ENV, case=_BF16_FIRST),
    Defect("steps-per-epoch-floor", "steps", ">=4.46,<4.52", **_STEPS_FLOOR),
    Defect("steps-per-epoch-floor", "resume", ">=4.46,<4.52", **_STEPS_FLOOR, case=_FLOORED_RESUME),
    Defect("ga-window-across-epochs", "steps", ">=4.46,<4.47", **_GA_ACROSS_EPOCHS, case=_EPOCH_CROSSING),
    Defect("rng-state-weights-only", "resume", ">=4.46,<4.47", **_RNG_WEIGHTS_ONLY, case=_ANY_RESUME),
    Defect("checkpoint-norm-names-reverted", "resume", ">=5.0,<5.6", **_LEGACY_NORM_NAMES, case=_NORM_RESUME),
    Defect("lr-logged-one-step-late", "schedule", ">=4.46,<4.51", **_LR_NEXT_STEP),
    Defect("eval-order-grouped-by-length", "predict_rows", ">=4.46", **_EVAL_GROUPED, case=_GROUPED_PREDICT),
    Defect("resume-metrics-count-whole-run", "resume_outputs", ">=4.46,<5.19", **_RESUME_METRICS,
           case=_HALF_RESUMED),
    Defect("rng-state-weights-only", "resume_outputs", ">=4.46,<4.47", **_RNG_WEIGHTS_ONLY, case=_HALF_RESUMED),
    Defect("default-collator-numpy-labels-float", "collation", ">=4.46,<5.22", **_NUMPY_LABEL_FLOAT,
           case=_NUMPY_DEFAULT),
    Defect("ga-loss-kwargs-dropped", "loss_options", ">=5.0", **_GA_KWARGS, case=_OWN_MEAN_LOSS),
    Defect("resume-skips-partial-window", "resume", ">=4.52,<4.57", **_RESUME_PARTIAL_WINDOW, case=_FLOORED_RESUME),
    Defect("bert-fast-vocab-file-ignored", "local_tokenizer", ">=5.0", **_VOCAB_FILE_IGNORED, case=_VOCAB_FILE),
    Defect("bert-legacy-no-token-type-ids", "local_tokenizer", ">=5.0", **_NO_TOKEN_TYPES, case=_LEGACY_PAIRS),
    Defect("checkpoint-norm-names-reverted", "best_checkpoint", ">=5.0,<5.6",
           **{**_LEGACY_NORM_NAMES, "trigger": LOADS_BEST}, case=_BEST_BERT),
    Defect("label-smoothing-ga-inflated", "loss_options", ">=4.46,<4.48", **_SMOOTHING_GA, case=_SMOOTHED),
    Defect("label-smoothing-ga-inflated", "loss_options", ">=5.0,<5.15", **_SMOOTHING_GA, case=_SMOOTHED),
    Defect("bf16-fresh-head-uninitialised", "dtype", ">=5.8,<5.9", **_BF16_FRESH_HEAD, case=_BF16_WEIGHTS),
)


IGNORE_ENV = "HARNESS_IGNORE_KNOWN_DEFECTS"  # set it to judge as if no defect were known (`harness bisect` does)


def expected(version: str | Version, invariant: str) -> list[Defect]:
    """The known defects the suite expects to break `invariant` on `version`: none when IGNORE_ENV is set, so a
    known defect is a plain failure (where did the behaviour change, not is it registered)."""
    return [] if os.environ.get(IGNORE_ENV) else defects_for(version, invariant)


def defects_for(version: str | Version, invariant: str | None = None) -> list[Defect]:
    """The known defects of a transformers version, optionally only those breaking one invariant."""
    return [d for d in DEFECTS if d.covers(version) and invariant in (None, d.invariant)]


def installed() -> tuple[str, list[Defect]]:
    """The installed transformers version and its known defects, one entry per defect id."""
    import importlib.metadata

    version = importlib.metadata.version("transformers")
    unique = {d.id: d for d in defects_for(version)}
    return version, list(unique.values())


def by_id(defect_id: str) -> Defect:
    """The registry entry of a defect id (the first, when it breaks several invariants)."""
    found = next((d for d in DEFECTS if d.id == defect_id), None)
    if found is None:
        raise KeyError(f"unknown defect {defect_id!r}; known: {', '.join(sorted({d.id for d in DEFECTS}))}")
    return found


@dataclass(frozen=True)
class DefectVerdict:
    outcome: str  # "pass", "xfail" (a known defect reproduced) or "fail" (a known defect no longer reproduces)
    message: str
    reproduced: tuple[str, ...] = ()  # ids of the known defects whose case broke


def verdict(known: Sequence[Defect], results: Mapping[TrainCase, Sequence[Broken]], version: str | Version) -> DefectVerdict:
    """What a test makes of the breaks of its invariant per case run (`results`), given the known defects covering
    it: a defect reproduces when its own case breaks (or, without one, when anything breaks). Without a known defect
    every break is a plain failure, which the test reports itself."""
    if not known:
        return DefectVerdict("pass", "")
    gone = [d for d in known if not (results.get(d.case) if d.case is not None else any(results.values()))]
    reproduced = tuple(dict.fromkeys(d.id for d in known if d not in gone))
    first = next((broken[0] for broken in results.values() if broken), None)
    if gone:
        other = f"\nanother break was seen, which no known defect explains: {first}" if first else ""
        return DefectVerdict("fail", "; ".join(
            f"known defect {d.id} no longer reproduces on transformers {version} (listed for {d.versions}"
            f"{'' if d.case is None else ', on its case'}): narrow its version range in harness/invariants/defects.py"
            for d in gone) + other, reproduced)
    return DefectVerdict("xfail", "\n".join([f"known defect(s) on transformers {version}:", *(f"  {d}" for d in known),
                                       "first break seen:", f"  {first}"]), reproduced)


def triggered(found: DefectVerdict, configs: Sequence[RunConfig], stated: Mapping[str, Any] | None = None) -> str | None:
    """Why a reproduced known defect is a failure for this user (their settings trigger it), or None."""
    hits = [(by_id(i), c) for i in found.reproduced for c in by_id(i).affects(configs, stated)]
    if not hits:
        return None
    return "\n".join(["known defect(s) reproduced on this transformers, and your fine-tuning triggers them:",
                      *(f"  {d.id} ({d.when}; your cell {c.cell_id}): {d.summary} ({d.link})"
                        + (f"; workaround: {d.workaround}" if d.workaround else "") for d, c in hits),
                      "", found.message])


OUTCOMES_ENV = "HARNESS_DEFECTS_OUT"  # a JSON-lines file each training test appends its defect outcome to


def log_outcome(invariant: str, found: DefectVerdict, version: str | Version) -> None:
    """Append which known defects reproduced for `invariant` to $HARNESS_DEFECTS_OUT (upgrade-check reads it)."""
    path = os.environ.get(OUTCOMES_ENV)
    if not path:
        return
    line = json.dumps({"invariant": invariant, "transformers": str(version), "outcome": found.outcome,
                       "reproduced": list(found.reproduced)})
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def read_outcomes(path: str | os.PathLike) -> dict[str, set[str]]:
    """Defect id -> the invariants it reproduced on, from a $HARNESS_DEFECTS_OUT file (empty if none)."""
    found: dict[str, set[str]] = {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        entry = json.loads(line)
        for defect_id in entry.get("reproduced", []):
            found.setdefault(defect_id, set()).add(entry["invariant"])
    return found
