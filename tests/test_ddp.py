"""Data parallel (ddp.py): 2 processes with P/2 prompts each end with the same weights as 1 process with
P prompts (gloo, CPU, fp32, the toy model), and a 2-process run resumed continues identically."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

import bcr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world, port, flags):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    bcr.main(flags)
    torch.distributed.destroy_process_group()


def _run(world, flags):
    if world == 1:
        torch.set_num_threads(1)
        bcr.main(flags)
    else:
        mp.spawn(_rank, args=(world, _free_port(), flags), nprocs=world, join=True)


@pytest.fixture
def base(toy_base):
    return toy_base


def _flags(base, out, steps, *extra):
    return ["--model", str(base), "--data", "toy", "--no-eval", "--n", "2", "--budget", "24", "--group", "4",
            "--prompts", "4", "--micro-batch", "8", "--lr", "1e-2", "--length-penalty", "1.0", "--steps", str(steps),
            "--out", str(out), "--device", "cpu", "--save-every", "1", *extra]


def _weights_and_log(out):
    timings = ("step_seconds", "rollout_tokens_per_s")
    log = [{k: v for k, v in json.loads(x).items() if k not in timings} for x in open(out / "log.jsonl")]
    return load_file(os.path.join(out, "ckpt", "model.safetensors")), log


@pytest.mark.slow
def test_two_processes_equal_one(base, tmp_path):
    _run(1, _flags(base, tmp_path / "one", 2))
    _run(2, _flags(base, tmp_path / "two", 2))
    (w1, log1), (w2, log2) = _weights_and_log(tmp_path / "one"), _weights_and_log(tmp_path / "two")
    assert any(r["grad_norm"] > 0 for r in log1)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=0)
    for r1, r2 in zip(log1, log2):  # the same rollouts and rewards; the statistics up to float sums
        assert {k: r1[k] for k in ("reward", "accuracy", "tokens_per_problem")} == \
               {k: r2[k] for k in ("reward", "accuracy", "tokens_per_problem")}
        assert r2["grad_norm"] == pytest.approx(r1["grad_norm"], rel=1e-4)
    # resumed with 2 processes: the same as the straight 1-process run of 3 steps
    _run(1, _flags(base, tmp_path / "one", 3, "--resume"))
    _run(2, _flags(base, tmp_path / "two", 3, "--resume"))
    (w1, log1), (w2, log2) = _weights_and_log(tmp_path / "one"), _weights_and_log(tmp_path / "two")
    assert [r["step"] for r in log2] == [0, 1, 2]
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=0)
