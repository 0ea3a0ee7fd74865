#!/bin/bash
# One bounded GPU lease: the gpu tier (MiniLM, weights rounded to fp16 to travel) on the GLUE tasks that fit, the
# training invariants on CUDA in fp16/bf16, throughput + MFU of MiniLM and of a random-init BERT-base.
# Packs what exists into $OUT/gpu.tar.gz after every stage, so a stage cut short loses nothing already finished.
set -u
START=$(date +%s)
BUDGET=${BUDGET:-480}
ROOT=$PWD
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HARNESS_CACHE=/tmp/hcache GLUE_DIR=$ROOT/.gpu/glue
LEASE=results/gpu-lease
mkdir -p $LEASE
log() { echo "[$(($(date +%s) - START))s] $*" | tee -a $LEASE/stages.log; }
left() { echo $((START + BUDGET - $(date +%s))); }
pack() { tar czf "$OUT/gpu.tar.gz" $LEASE results/baselines/gpu 2>/dev/null; }
stage() {  # stage NAME SECONDS CMD...: run CMD for at most SECONDS (and never past the budget), log its exit
  local name=$1 want=$2; shift 2
  local have=$(( $(left) - 15 ))
  local give=$(( want < have ? want : have ))
  if (( give < 20 )); then log "$name: skipped, ${have}s left"; return; fi
  log "$name: start (limit ${give}s)"
  local t0=$(date +%s)
  timeout -s INT -k 20 $give "$@" > $LEASE/$name.log 2>&1
  log "$name: exit $? after $(( $(date +%s) - t0 ))s"
  tail -n 4 $LEASE/$name.log | sed 's/^/    /' | tee -a $LEASE/stages.log
  pack
}

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=$ROOT:$ROOT/.gpu/shim:/tmp/site
{ nvidia-smi; python3 -c "import torch, transformers, accelerate, datasets, evaluate, pyarrow, numpy; print('torch', torch.__version__, torch.version.cuda, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'numpy', numpy.__version__)"; python3 -m harness.cli env; } > $LEASE/env.log 2>&1
log "setup done: $(grep -m1 '^torch' $LEASE/env.log)"

MINILM=$ROOT/.gpu/models/minilm-f16r
BASE=/tmp/models/bert-base-arch-random
python3 - <<EOF >> $LEASE/stages.log 2>&1
import shutil, torch
from pathlib import Path
from transformers import BertConfig, BertModel
torch.manual_seed(0)
out = Path("$BASE"); out.mkdir(parents=True, exist_ok=True)
BertModel(BertConfig(vocab_size=30522)).save_pretrained(out)  # BERT-base's shape, random weights
for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy(Path("$MINILM") / f, out / f)
print("built", out)
EOF

PYTEST="python3 -m pytest -p no:cacheprovider -q -rfEsx --harness-tiers gpu --harness-record-dir $LEASE/records"
# 1. quality: the small GLUE tasks with the nightly preset, fp32/fp16/bf16, seed 0; baselines written at the end
stage quality-small 170 $PYTEST suites/test_gpu.py -m gpu --harness-models $MINILM --harness-tasks mrpc,rte,wnli \
  --harness-seeds 0 --harness-update-baselines --harness-markdown $LEASE/verdicts-small.md
# 2. train() invariants on CUDA (fp32, fp16, bf16)
stage invariants 90 $PYTEST suites/test_training.py -m gpu -k cuda
# 3. quality: STS-B and CoLA
stage quality-mid 150 $PYTEST suites/test_gpu.py -m gpu --harness-models $MINILM --harness-tasks stsb,cola \
  --harness-seeds 0 --harness-update-baselines --harness-markdown $LEASE/verdicts-mid.md
# 4. throughput benchmarks (5 rounds x 30 steps) and one epoch of MRPC per precision for MFU, MiniLM and BERT-base
stage bench 90 $PYTEST suites/test_throughput.py -m benchmark --harness-models $MINILM,$BASE --harness-tasks mrpc \
  --harness-update-baselines --benchmark-json $LEASE/benchmark.json
stage mfu 60 python3 -m harness.cli run --tier gpu --models $MINILM,$BASE --tasks mrpc --seeds 0 --epochs 1 \
  --output $LEASE/mfu
# 5. SST-2 with what is left
stage quality-sst2 400 $PYTEST suites/test_gpu.py -m gpu --harness-models $MINILM --harness-tasks sst2 \
  --harness-seeds 0 --harness-update-baselines --harness-markdown $LEASE/verdicts-sst2.md
log "done"
pack
cp $LEASE/stages.log "$OUT/stages.log"
