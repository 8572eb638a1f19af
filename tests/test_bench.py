"""bench.py runs and prints ratios consistent with its own rates (small sizes; the numbers are in BENCHMARKS.md)."""
import argparse
import os
import re

import pytest
import torch

import bench

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the bench builds a 1.5B model: run it by hand")
def test_sample_bench_prints_ours_hf_and_the_forward_ceiling(capsys):
    bench.bench_sample(argparse.Namespace(batch=4, prompt_len=8, new_tokens=8, repeat=1))
    out = capsys.readouterr().out
    rate = {name: float(v.replace(",", "")) for name, v in re.findall(r"^(ours|HF generate): ([\d,]+) tokens/s", out,
                                                                       re.M)}
    assert set(rate) == {"ours", "HF generate"} and min(rate.values()) > 0
    ratio = float(re.search(r"ratio ours/HF: ([\d.]+)x", out).group(1))
    assert ratio == pytest.approx(rate["ours"] / rate["HF generate"], abs=0.01)
    assert re.search(r"ceiling for any sampler through this forward: [\d.]+x HF; ours is \d+% of it", out)


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "gsm8k", "raw")), reason="no ../shared/data")
def test_reward_bench_counts_its_calls(capsys):
    bench.bench_reward(argparse.Namespace(data_dir=SHARED))
    out = capsys.readouterr().out
    m = re.search(r"(\d+) grade calls \((\d+) own answers, (\d+) shuffled\) .* ([\d,]+) calls/s", out)
    assert m and int(m.group(1)) == int(m.group(2)) + int(m.group(3)) and float(m.group(4).replace(",", "")) > 0
