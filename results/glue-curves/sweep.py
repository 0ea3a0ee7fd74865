"""Learning curves of MiniLM (fp16-rounded copy) on GLUE with full training sets on the GPU: the most this
checkpoint reaches per task and after how many examples. One JSON line per cell: settings, evals, final metrics."""
import json, os, sys, time
from harness.core.config import make_config
from harness.core import runner

DEADLINE = time.time() + float(sys.argv[1])
MODEL = os.path.abspath(".gpu/models/minilm-f16r")
OUT = os.environ.get("OUT", "/tmp/out")
GRID = [  # task, lr, epochs, evals_per_epoch, max_train_samples
    ("cola", 1e-4, 5.0, 2, None), ("rte", 1e-4, 5.0, 2, None), ("mrpc", 1e-4, 5.0, 2, None),
    ("stsb", 1e-4, 5.0, 2, None), ("sst2", 1e-4, 1.0, 8, None),
    ("cola", 3e-4, 5.0, 2, None), ("rte", 3e-4, 5.0, 2, None), ("mrpc", 3e-4, 5.0, 2, None),
    ("stsb", 3e-4, 5.0, 2, None), ("sst2", 3e-5, 1.0, 8, None), ("cola", 5e-5, 5.0, 2, None),
]
with open(f"{OUT}/sweep.jsonl", "a") as out:
    for task, lr, epochs, evals, samples in GRID:
        if time.time() > DEADLINE - 30:
            print("deadline: stop before", task, lr, flush=True); break
        cfg = make_config(MODEL, task, seed=0, preset="run_glue", learning_rate=lr, epochs=epochs,
                          evals_per_epoch=evals, warmup_ratio=0.1, weight_decay=0.01, train_batch_size=32,
                          eval_batch_size=128, max_train_samples=samples, glue_dir=os.environ["GLUE_DIR"],
                          device="cuda" if len(sys.argv) < 3 else sys.argv[2])
        t0 = time.time()
        rec = runner.run_cell(cfg)
        line = {"task": task, "lr": lr, "epochs": epochs, "ok": rec.ok, "error": rec.error, "seconds": time.time() - t0,
                "train_rows": (rec.data.get("rows") or {}).get("train"),
                "evals": [(e["step"], e["epoch"], e["validation"]) for e in rec.epochs] if rec.ok else [],
                "final": rec.metrics.get("validation") if rec.ok else None}
        out.write(json.dumps(line) + "\n"); out.flush()
        print(task, lr, epochs, round(line["seconds"], 1), line["final"] and {k: round(v, 4) for k, v in line["final"].items() if k in ("accuracy", "f1", "pearson", "matthews_correlation")}, flush=True)
