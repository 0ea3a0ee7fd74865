"""Version knowledge lives in compat: renamed and removed arguments."""

import inspect
from pathlib import Path

import pytest
import transformers

from harness.core import compat


def test_warmup_ratio_is_translated_for_the_installed_version(tmp_path) -> None:
    args = compat.training_arguments(output_dir=str(tmp_path), warmup_ratio=0.1, report_to="none", use_cpu=True)
    if compat.IS_V5:
        assert args.warmup_steps == pytest.approx(0.1)
    else:
        assert args.warmup_ratio == pytest.approx(0.1)


def test_unknown_arguments_fail_loudly(tmp_path) -> None:
    with pytest.raises(TypeError, match="made_up_option"):
        compat.training_arguments(output_dir=str(tmp_path), made_up_option=1)
    if compat.IS_V5:  # still accepted (deprecated) by 4.46-4.57
        with pytest.raises(TypeError, match="evaluation_strategy"):
            compat.training_arguments(output_dir=str(tmp_path), evaluation_strategy="epoch")


def test_removed_arguments_are_really_gone_in_v5() -> None:
    accepted = set(inspect.signature(transformers.TrainingArguments.__init__).parameters)
    removed = {"overwrite_output_dir", "logging_dir", "no_cuda", "warmup_ratio", "group_by_length"}
    assert (accepted & removed == set()) == compat.IS_V5


def test_supported_version_range() -> None:
    assert compat.TRANSFORMERS_VERSION >= compat.MIN_SUPPORTED


def test_predict_in_dataset_order_undoes_length_grouping(tmp_path: Path) -> None:
    """With group_by_length, predict() returns rows shuffled (known defect eval-order-grouped-by-length); the
    runner's predict_in_dataset_order gives row i as dataset row i, logits and label."""
    import numpy as np
    import torch
    from transformers import DataCollatorWithPadding

    from harness.contracts.cases import DataSpec, build_rows, to_dataset
    from harness.invariants import TrainCase
    from harness.invariants.driver import _loaded, fresh_model

    case = TrainCase(model="tiny-bert")
    model, tokenizer = fresh_model(case).eval(), _loaded(case).tokenizer
    rows = build_rows(DataSpec(rows=11, seed=10, min_length=2, max_length=24), 2)
    dataset = to_dataset(rows, "label")
    args = compat.training_arguments(output_dir=str(tmp_path), per_device_eval_batch_size=3, group_by_length=True,
                                     report_to="none", use_cpu=True, disable_tqdm=True)
    trainer = compat.trainer(model=model, args=args, tokenizer=tokenizer,
                             data_collator=DataCollatorWithPadding(tokenizer))
    shuffled = trainer.predict(dataset)
    assert shuffled.label_ids.tolist() != rows.labels, "the library now predicts in dataset order: narrow the defect"
    ordered = compat.predict_in_dataset_order(trainer, dataset)
    assert ordered.label_ids.tolist() == rows.labels
    with torch.no_grad():
        alone = np.stack([model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in rows.ids])
    np.testing.assert_allclose(ordered.predictions, alone, rtol=1e-4, atol=1e-4)
    assert "_get_eval_sampler" not in vars(trainer)  # the Trainer's own sampler again
