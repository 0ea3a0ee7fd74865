"""Version knowledge lives in compat: renamed and removed arguments."""

import inspect

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
