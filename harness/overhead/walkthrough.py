"""The course walkthrough written by hand, without the harness: the plain side of `harness overhead`.

Run as a script with one settings file (written by harness.overhead.measure: the rows the harness's cell trains and
evaluates, as JSON lines, and its resolved hyperparameters). Tokenizes with map(batched=True), pads with
DataCollatorWithPadding, trains with Trainer.train(), predicts, scores, and prints one JSON line: the phases'
seconds since the interpreter started, train samples/s and the metric. Imports nothing from the harness.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import inspect  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,  # noqa: E402
                          Trainer, TrainingArguments, set_seed)


def score(regression: bool):
    def compute(prediction: Any) -> dict[str, float]:
        logits, labels = prediction
        if regression:
            return {"pearson": float(np.corrcoef(np.squeeze(logits), labels)[0, 1])}
        return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}
    return compute


def grouping(by_length: bool) -> dict[str, Any]:
    """Length-grouped batches as this transformers version spells them (5.x replaced the flag with a strategy)."""
    if not by_length:
        return {}
    flag = "group_by_length" in inspect.signature(TrainingArguments).parameters
    return {"group_by_length": True} if flag else {"train_sampling_strategy": "group_by_length"}


def main(path: str) -> dict[str, Any]:
    s = json.loads(open(path).read())
    phases = {"imports": time.perf_counter() - STARTED}
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    raw = load_dataset("json", data_files={"train": s["train_file"], "validation": s["eval_file"]})
    tokenizer = AutoTokenizer.from_pretrained(s["model"])

    def tokenize(batch: dict[str, list]) -> Any:
        return tokenizer(*(batch[k] for k in s["text_keys"]), truncation=True, max_length=s["max_length"])

    tokenized = raw.map(tokenize, batched=True)
    phases["tokenized"] = time.perf_counter() - STARTED
    set_seed(s["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(s["model"], num_labels=s["num_labels"])
    phases["model_loaded"] = time.perf_counter() - STARTED
    args = TrainingArguments(
        output_dir=s["output_dir"], per_device_train_batch_size=s["train_batch_size"],
        per_device_eval_batch_size=s["eval_batch_size"], learning_rate=s["learning_rate"],
        num_train_epochs=s["epochs"], weight_decay=s["weight_decay"], warmup_steps=s["warmup_steps"],
        seed=s["seed"], eval_strategy="steps" if s["eval_steps"] else "epoch", eval_steps=s["eval_steps"],
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, **grouping(s["group_by_length"]))
    trainer = Trainer(model=model, args=args, train_dataset=tokenized["train"],
                      eval_dataset=tokenized["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer, compute_metrics=score(s["num_labels"] == 1))
    trained = trainer.train()
    phases["trained"] = time.perf_counter() - STARTED
    predicted = trainer.predict(tokenized["validation"])
    phases["predicted"] = time.perf_counter() - STARTED
    metric = "pearson" if s["num_labels"] == 1 else "accuracy"
    return {"phases": phases, "train_samples_per_second": trained.metrics["train_samples_per_second"],
            "train_runtime": trained.metrics["train_runtime"], "metric": metric,
            "value": predicted.metrics[f"test_{metric}"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
