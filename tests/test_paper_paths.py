"""The paper presets' code paths end to end on the CPU, at reduced widths: Qwen2 (R1-1.5B) and Qwen3
(Qwen3-4B-Thinking) configs with their real query/KV head ratios, bf16, gradient checkpointing, and a
chat template whose generation prompt opens a thinking block. Base evaluation, 2 steps, checkpoint,
resume, one more step, evaluation; the first step's ratio is 1 (old log-probs from the trainer)."""
import json
import os

import pytest
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

import bcr
import reward as rw
import toy

THINK_TEMPLATE = toy.CHAT_TEMPLATE.replace("{% if add_generation_prompt %}<|assistant|>{% endif %}",
                                           "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}")


def _tiny(kind, path):
    tok = toy.make_tokenizer()
    tok.chat_template = THINK_TEMPLATE
    common = dict(vocab_size=len(tok), intermediate_size=96, num_hidden_layers=2, max_position_embeddings=512,
                  tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if kind == "r1-1.5b":  # 12 query heads share 2 KV heads, as in DeepSeek-R1-Distill-Qwen-1.5B
        model = Qwen2ForCausalLM(Qwen2Config(hidden_size=96, num_attention_heads=12, num_key_value_heads=2, **common))
    else:  # 32 / 8, with Qwen3's explicit head_dim and q/k norms
        model = Qwen3ForCausalLM(Qwen3Config(hidden_size=64, num_attention_heads=32, num_key_value_heads=8,
                                             head_dim=8, **common))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return tok


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["r1-1.5b", "qwen3-4b"])
def test_preset_code_path_end_to_end(preset, tmp_path, capsys):
    tok = _tiny(preset, tmp_path / "model")
    assert rw.opens_thinking(tok)
    out = tmp_path / "run"
    flags = ["--preset", preset, "--model", str(tmp_path / "model"), "--data", "toy", "--eval-data", "toy",
             "--eval-problems", "4", "--eval-n", "1", "2", "--budget", "24", "--group", "2", "--prompts", "2",
             "--micro-batch", "2", "--device", "cpu", "--out", str(out), "--save-every", "1", "--group-by", "random"]
    res = bcr.main(flags + ["--steps", "2", "--lunch-budget", "30"])
    args = json.load(open(out / "args.json"))
    assert args["dtype"] == "bfloat16" and args["grad_checkpointing"] and args["thinking"] is True
    assert set(res) == {"base", "bcr", "lunch", "claims"} and set(res["base"]) == {"1", "2"}
    assert res["lunch"]["budget"] == 30 and res["claims"]["free_lunch"]["budget"] == 30
    log = [json.loads(x) for x in open(out / "log.jsonl")]
    assert [r["step"] for r in log] == [0, 1]
    assert log[0]["on_policy_ratio_dev"] < 1e-4  # the trainer's own old log-probs, in bf16
    assert os.path.exists(out / "ckpt" / "train_state.pt")
    capsys.readouterr()
    res2 = bcr.main(flags + ["--steps", "3", "--resume", "--lunch-budget", "30"])
    printed = capsys.readouterr().out
    assert "base model: evaluation read from" in printed  # no second base evaluation after --resume
    assert res2["base"] == json.loads(json.dumps(res["base"]))
    assert res2["lunch"]["base"] == json.loads(json.dumps(res["lunch"]["base"]))
    assert [json.loads(x)["step"] for x in open(out / "log.jsonl")] == [0, 1, 2]
    # a run from before --lunch-budget saved the table alone: it resumes, with no free lunch row
    (out / "base_eval.json").write_text(json.dumps(res["base"]))
    res3 = bcr.main(flags + ["--steps", "3", "--resume", "--lunch-budget", "30"])
    assert res3["base"] == res2["base"] and "lunch" not in res3
