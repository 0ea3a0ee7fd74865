"""Benchmark and regression harness for fine-tuning with transformers.Trainer."""

__version__ = "0.1.0"
