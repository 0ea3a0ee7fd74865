"""Trainer subclasses a cell may run (RunConfig.trainer_class): the importer that checks them, and one example."""

from __future__ import annotations

import importlib
from typing import Any

import torch
import transformers

from harness.errors import HarnessError

EXAMPLE = "harness.core.trainers:ExplicitLossTrainer"


def resolve(path: str | None) -> type[transformers.Trainer] | None:
    """The class named "package.module:ClassName", checked to be a transformers.Trainer subclass; None for None."""
    if path is None:
        return None
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure of user code is the user's to fix
        raise HarnessError(f"--trainer-class (trainer_class) {path}: module {module_name} cannot be imported ({type(err).__name__}: "
                           f"{err}). Make it importable (on PYTHONPATH or installed), e.g. {EXAMPLE}.") from None
    found = getattr(module, class_name, None)
    if found is None:
        raise HarnessError(f"--trainer-class (trainer_class) {path}: module {module_name} has no {class_name}. Name a class it "
                           f"defines, e.g. {EXAMPLE}.")
    if not (isinstance(found, type) and issubclass(found, transformers.Trainer)):
        raise HarnessError(f"--trainer-class (trainer_class) {path} is {found!r}, not a subclass of transformers.Trainer. Subclass "
                           "Trainer and override what you need (e.g. compute_loss).")
    return found


class ExplicitLossTrainer(transformers.Trainer):
    """Computes the task loss from the logits itself (cross-entropy, or mean squared error for regression), as a
    user's compute_loss written against the documented signature does; counts its calls per mode.

    The loss is a per-batch mean, so the Trainer must divide it by the gradient accumulation steps: models whose
    forward takes **kwargs make the Trainer assume a loss already normalised over the accumulated batch, hence
    `model_accepts_loss_kwargs = False` (the documented switch, read by 4.46-5.x).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.compute_loss_calls = {"train": 0, "eval": 0}

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        self.compute_loss_calls["train" if model.training else "eval"] += 1
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits
        if logits.shape[-1] == 1:  # a regression head (model.config is hidden once DDP wraps the model)
            loss = torch.nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
        else:
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        return (loss, outputs) if return_outputs else loss
