#!/usr/bin/env bash
# The GPU check of issue #17 on one H100/H200, in under 10 minutes: the CUDA tests of sample.py and
# memory.py, then at R1-1.5B's real widths (random weights) one rollout chunk compiled / eager / HF
# generate against the memory-bandwidth floor, one training micro-batch of 4 x 5.8k tokens with
# checkpointing and one BCR step of the r1-1.5b preset (2 prompts, budget 5120), each with
# torch.cuda.max_memory_allocated beside memory.py's plan. On a CPU: pass --tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 600 python bench.py gpu "$@"
