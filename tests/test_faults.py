"""Faults: a run killed with SIGKILL at random moments (one of them in the middle of a checkpoint
write) and resumed each time ends bit for bit where an uninterrupted run ends; Ctrl-C saves and
stops; a full disk is a clear error that leaves the last checkpoint loadable."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import bcr
import data
import toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def base(toy_base):
    return toy_base


def _flags(base, out, steps):
    return ["--model", str(base), "--data", "toy", "--no-eval", "--n", "2", "--budget", "24", "--group", "4",
            "--prompts", "4", "--micro-batch", "16", "--lr", "1e-2", "--length-penalty", "1.0", "--save-every", "1",
            "--steps", str(steps), "--out", str(out), "--device", "cpu"]


def _start(flags):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same arithmetic in every process
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "bcr.py"), *flags], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _log_lines(out):
    p = os.path.join(out, "log.jsonl")
    return open(p).read().count("\n") if os.path.exists(p) else 0


def _result(out):
    ckpt = data.checkpoint_path(str(out))
    weights = load_file(os.path.join(ckpt, "model.safetensors"))
    timings = ("step_seconds", "rollout_tokens_per_s")
    log = [{k: v for k, v in json.loads(x).items() if k not in timings} for x in open(os.path.join(out, "log.jsonl"))]
    return weights, log


STEPS = 20  # enough that the kills land before the run ends


@pytest.mark.slow
def test_killed_at_random_moments_and_resumed_ends_bit_for_bit_like_a_straight_run(base, tmp_path):
    straight = tmp_path / "straight"
    p = _start(_flags(base, straight, STEPS))
    assert p.wait(300) == 0, p.stdout.read()
    want_w, want_log = _result(straight)

    out, rng, kills, in_save = tmp_path / "killed", random.Random(0), 0, 0
    while kills < 6:
        p = _start(_flags(base, out, STEPS) + (["--resume"] if os.path.exists(out / "ckpt") or
                                                os.path.exists(out / "ckpt.old") else []))
        start = _log_lines(out)
        if kills == 2:  # once: kill as soon as a checkpoint write has begun
            while p.poll() is None and not os.path.exists(out / "ckpt.tmp"):
                time.sleep(0.0005)
            in_save += p.poll() is None
        else:  # a random moment of a step: rollout, update or save
            while p.poll() is None and _log_lines(out) <= start:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.2))
        if p.poll() is not None:
            break  # it finished before we could kill it
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
    assert kills >= 5 and in_save == 1
    p = _start(_flags(base, out, STEPS) + ["--resume"])
    assert p.wait(300) == 0, p.stdout.read()
    got_w, got_log = _result(out)
    assert [r["step"] for r in got_log] == list(range(STEPS))
    assert got_log == want_log
    assert all(torch.equal(got_w[k], want_w[k]) for k in want_w)


@pytest.mark.slow
def test_ctrl_c_saves_the_last_finished_step_and_exits_cleanly(base, tmp_path):
    out = tmp_path / "run"
    flags = _flags(base, out, 50)
    flags[flags.index("--save-every") + 1] = "100"  # no periodic save: the one on Ctrl-C is the only one
    p = _start(flags)
    while p.poll() is None and _log_lines(out) < 2:
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    text = p.communicate(timeout=120)[0]
    assert p.returncode == 0, text
    steps = _log_lines(out)
    assert f"interrupted: checkpoint of step {steps}" in text
    state = torch.load(os.path.join(out, "ckpt", "train_state.pt"), weights_only=False)
    assert state["step"] == steps and 2 <= steps < 50


def test_a_full_disk_is_a_clear_error_and_keeps_the_last_checkpoint(base, tmp_path, monkeypatch):
    out = tmp_path / "run"
    model, tok = data.load_model(str(base))
    problems = toy.make_problems(500, "train", 0)
    quiet = dict(log=lambda *a: None)
    bcr.train(bcr.parse_args(_flags(base, out, 2)), model, tok, problems, **quiet)
    before = load_file(os.path.join(out, "ckpt", "model.safetensors"))

    def enospc(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", enospc)  # train_state.pt: the last file of a checkpoint
    m, t, state = data.load_checkpoint(str(out))
    with pytest.raises(SystemExit, match="checkpoint at step 3 could not be written .*No space left on device.*"
                                         "the previous checkpoint is intact"):
        bcr.train(bcr.parse_args(_flags(base, out, 3) + ["--resume"]), m, t, problems, state=state, **quiet)
    monkeypatch.undo()
    m, t, state = data.load_checkpoint(str(out))
    assert state["step"] == 2 and not os.path.exists(out / "ckpt.tmp")
    assert all(torch.equal(m.state_dict()[k], before[k]) for k in before)
    # and the check before writing: too little free space for a checkpoint
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SystemExit, match=r"checkpoint at step 3: about .* GiB needed .* GiB free"):
        bcr.train(bcr.parse_args(_flags(base, out, 3) + ["--resume"]), m, t, problems, state=state, **quiet)
