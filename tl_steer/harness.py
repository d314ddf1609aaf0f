"""A steered model inside lm-evaluation-harness (``lm-eval`` 0.4.x, the ``harness`` extra).

    lm_eval --model tl_steer --model_args model=smollm2-135m-instruct,method=runs/caa,positions=all,strength=4 \\
        --tasks sst2_local --include_path tasks/

    import tl_steer.harness, lm_eval
    lm_eval.simple_evaluate(model="tl_steer", model_args="model=smollm2-135m-instruct,method=runs/caa", tasks=[...])
    lm_eval.simple_evaluate(model=tl_steer.harness.SteeredLM(bridge, method), tasks=[...])   # objects in memory

``model_args``: ``model`` (anything [`tl_steer.models.load_named()`][tl_steer.models.load_named] takes: a registered
name, a ``.gguf``, an HF folder, ``tiny-hf``), ``method`` (a folder written by [`tl_steer.save()`][tl_steer.io.save];
none: the unsteered model), ``positions`` (default: the method's registered scope), ``strength`` (default: the
saved one), ``batch_size``, ``device``.

**Scopes per request.** Each log-likelihood request is one row of ``context + continuation[:-1]``, laid out as
[`tl_steer.aligned`][tl_steer.aligned] lays out every scored row (contexts end at one column, left padding before,
right padding after, an attention mask): ``last_prompt`` edits the last context token of each request,
``prompt`` its context, ``generated`` its continuation, ``all`` every real token; padding is never edited, whatever
lm-eval's batching puts together. ``generate_until`` generates each request on its own (prompt scopes mean its
prompt; ``generated`` the new tokens). Tokenisation is lm-eval's own (``TemplateLM._encode_pair``: the whole string
encoded, then split) with the model's BOS rule ([`tl_steer.aligned.scoring_bos()`][tl_steer.aligned.scoring_bos],
which is lm-eval's ``hf`` rule on both real models).

**Registration.** ``import tl_steer.harness`` registers ``tl_steer`` (after lm-eval's own models, so ``hf`` and the
rest keep working). The ``lm_eval`` command has no plug-in discovery for models in 0.4.x; ``scripts/setup.sh`` runs
``python -m tl_steer.harness --install`` once, which writes a one-line ``tl_steer_lm_eval.pth`` into site-packages:
it teaches lm-eval's ``get_model`` the name ``tl_steer`` without importing tl_steer (or torch) until that model is
asked for. ``--uninstall`` removes it.
"""

from __future__ import annotations

import argparse
import site
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import registry
from ._types import TransformerBridge
from .aligned import aligned_logprobs, pad_token_id, scoring_bos
from .core import steer
from .errors import SteeringError

try:
    import lm_eval.models  # noqa: F401 - lm-eval's own models first: get_model imports them only into an empty registry
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import model_registry
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ImportError as e:  # pragma: no cover - the extra is not installed
    raise ImportError(f"tl_steer.harness needs lm-eval 0.4.x: pip install 'tl_steer[harness]' ({e})") from None

NAME = "tl_steer"


def _float(x: Any, what: str) -> float | None:
    if x is None or x == "":
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        raise SteeringError(f"--model_args {what}={x!r} is not a number") from None


class SteeredLM(TemplateLM):
    """A TransformerBridge steered by a tl_steer method, as an lm-eval ``LM`` (see the module docstring)."""

    backend = "causal"

    def __init__(self, model: str | TransformerBridge = "smollm2-135m-instruct", method: Any = None,
                 positions: str | None = None, strength: float | str | None = None, batch_size: int | str = 8,
                 device: str | None = None, max_length: int | None = None, **unused: Any) -> None:
        super().__init__()
        from .io import load_method
        from .models import load_named

        unknown = {k: v for k, v in unused.items() if k not in ("max_batch_size", "dtype", "trust_remote_code")}
        if unknown:
            raise SteeringError(f"--model_args for {NAME}: unknown {sorted(unknown)}; expected model, method, positions, "
                                "strength, batch_size, device, max_length")
        if str(batch_size).startswith("auto"):
            batch_size = 8
        try:
            self.batch_size = int(batch_size)
        except (TypeError, ValueError):
            raise SteeringError(f"batch_size must be an int, got {batch_size!r}") from None
        if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
            # the lm_eval command passes its default device (cuda:0) whether or not the user asked for it
            warnings.warn(f"{NAME}: device {device!r} is not available here; running on cpu", stacklevel=2)
            device = "cpu"
        self.model = load_named(model, device=device) if isinstance(model, str) else model
        if isinstance(method, (str, Path)):
            method = load_method(method, self.model)
        self.method = method
        self.strength = _float(strength, "strength")
        if method is not None and positions is None:
            positions = registry.default_positions(method)
        self.positions = positions
        self.hooks = ([] if method is None else method.hooks(self.model, positions=positions, strength=self.strength))
        self.tokenizer = self.model.tokenizer
        self._bos = scoring_bos(self.model)
        self._max_length = int(max_length or getattr(self.model.cfg, "n_ctx", 2048))

    # --- tokenisation: lm-eval's rule with the model's BOS rule -------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return int(bos) if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tl_steer")).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        ids = list(self.tokenizer(string, add_special_tokens=False)["input_ids"])
        bos = self._bos if add_special_tokens is None else add_special_tokens
        bos_id = getattr(self.tokenizer, "bos_token_id", None)
        if bos and bos_id is not None and (not ids or ids[0] != bos_id):
            ids = [bos_id] + ids
        return ids

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    # --- scoring -------------------------------------------------------------------------------------------------
    def _fit(self, ctx: list[int], cont: list[int]) -> tuple[list[int], list[int]]:
        """Cut the context from the left so that ``context + continuation[:-1]`` fits ``max_length``."""
        keep = self.max_length - len(cont) + 1
        if keep < 1:
            raise SteeringError(f"a continuation of {len(cont)} tokens does not fit max_length={self.max_length}")
        return ctx[-keep:], cont

    @torch.no_grad()
    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        out: list[tuple[float, bool]] = []
        pad = pad_token_id(self.model)
        for start in range(0, len(requests), self.batch_size):
            chunk = [self._fit(list(c), list(a)) for _, c, a in requests[start:start + self.batch_size]]
            with steer(self.model, self.hooks):
                logp = aligned_logprobs(self.model, [(c, a[:-1]) for c, a in chunk], pad)
            for r, (_, cont) in enumerate(chunk):
                rows = logp[r, : len(cont)]
                idx = torch.tensor(cont, device=rows.device)
                picked = rows[torch.arange(len(cont), device=rows.device), idx]
                out.append((float(picked.sum()), bool((rows.argmax(-1) == idx).all())))
                self.cache_hook.add_partial("loglikelihood", requests[start + r][0], out[-1])
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        out = []
        for (string,) in [req.args for req in requests]:
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(string, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1)]
            scores = self._loglikelihood_tokens([(("", ""), list(c), list(a)) for c, a in windows])
            out.append(sum(s for s, _ in scores))
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), out[-1])
        return out

    @torch.no_grad()
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for context, gen_kwargs in [req.args for req in requests]:
            kw = dict(gen_kwargs or {})
            until = kw.pop("until", None) or [self.tok_decode([self.eot_token_id])]
            until = [until] if isinstance(until, str) else list(until)
            n_new = int(kw.pop("max_gen_toks", 256))
            do_sample = bool(kw.pop("do_sample", False)) and float(kw.get("temperature", 0.0) or 0.0) > 0
            ids = self.tok_encode(context)[-(self.max_length - n_new):]
            tokens = torch.tensor([ids], device=getattr(self.model.cfg, "device", None) or "cpu")
            with steer(self.model, self.hooks):
                full = self.model.generate(tokens, max_new_tokens=n_new, do_sample=do_sample, verbose=False,
                                           **({"temperature": float(kw["temperature"])} if do_sample else {}))
            text = self.tok_decode(full[0, len(ids):].tolist())
            for stop in until:
                if stop and stop in text:
                    text = text.split(stop)[0]
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out


def register() -> None:
    """Register ``tl_steer`` in lm-eval's model registry (idempotent)."""
    if NAME not in model_registry:
        model_registry.register(NAME, target=SteeredLM)


register()

_HOOK = Path(__file__).with_name("_lm_eval_hook.py")
PTH = "tl_steer_lm_eval.pth"


def _site_dir() -> Path:
    paths = [Path(p) for p in site.getsitepackages()] + [Path(site.getusersitepackages())]
    for p in paths:
        if p.is_dir() and str(p).startswith(sys.prefix):
            return p
    return paths[0]


def install(target: Path | None = None) -> Path:
    """Write the one-line ``.pth`` that makes ``lm_eval --model tl_steer`` work (see the module docstring)."""
    target = (target or _site_dir()) / PTH
    line = (f"import sys; exec(compile(open({str(_HOOK)!r}).read(), {str(_HOOK)!r}, 'exec'), "
            "{'__name__': 'tl_steer_lm_eval_hook'})\n")
    if target.exists() and target.read_text() not in (line, ""):
        if "tl_steer" not in target.read_text():
            raise SteeringError(f"{target} exists and is not tl_steer's; left alone")
    target.write_text(line)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Make the lm_eval command know --model tl_steer.")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--install", action="store_true", help=f"write {PTH} into this environment's site-packages")
    g.add_argument("--uninstall", action="store_true", help=f"remove {PTH}")
    args = ap.parse_args(argv)
    if args.install:
        print(f"[tl_steer.harness] wrote {install()}")
    else:
        p = _site_dir() / PTH
        if p.exists() and "tl_steer" in p.read_text():
            p.unlink()
            print(f"[tl_steer.harness] removed {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
