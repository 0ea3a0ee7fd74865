"""Suites: what `pytest suites/` runs before an upgrade. The harness plugin (harness/suite/plugin.py) parametrizes them.

- test_contracts.py  contract  Trainer.predict()/evaluate() output contracts (hypothesis)
- test_training.py   training  Trainer.train() invariants over the tiny families (hypothesis), known defects as xfails
- test_smoke.py      smoke     tiny models x built-in tasks: quality and time-to-quality verdicts (default)
- test_glue.py       glue      MiniLM x the GLUE tasks in GLUE_DIR, CPU-sized (opt-in: -m glue)
- test_gpu.py        gpu/slow  full checkpoints, run_glue hyperparameters (opt-in: -m slow; needs CUDA)
- test_throughput.py benchmark per-step train and per-batch eval timings via pytest-benchmark, every selected tier

A test fine-tunes nothing itself: `harness_session.fine_tune(cell)` returns the session's single run of that cell. Tests
register what they measured; the plugin judges everything against results/baselines/ after the last test.
"""

import os

# Offline by default: a suite must never wait on the network (a missing dataset costs ~23 s of retries otherwise).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
