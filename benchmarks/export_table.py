"""What ``tl_steer.exporting`` bakes into a checkpoint, and how exactly (issue 23's table).

Two tables, each cell exported for real, reloaded with plain ``AutoModelForCausalLM`` and compared with the steered
bridge on two probe texts (``max |Δ logit|``); a refused cell shows the start of its reason.

* **families**: every architecture family with a site table (tiny random models) x each edit kind: a vector at
  layer 0's input (the embeddings), at a later residual hook, ITI-style per-head shifts at ``hook_z``, vectors at
  ``hook_attn_out`` / ``hook_mlp_out``, and SADI's scales of heads (``hook_z``) and neurons (``mlp.hook_post``).
* **methods**: each registered method fitted on SmolLM2-135M (or ``--model``) x position scope (``all``,
  ``last_prompt``, the method's default).

    python benchmarks/export_table.py                       # -> results/export_table.{json,md}
    python benchmarks/export_table.py --model tiny-hf       # a quick run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tl_steer as ts  # noqa: E402
from tl_steer import registry  # noqa: E402
from tl_steer.exporting import MANIFEST, export, max_logit_diff  # noqa: E402
from tl_steer.methods.sadi import Sadi  # noqa: E402
from tl_steer.methods.vector import SteeringVectors  # noqa: E402
from tl_steer.models import load_hf, load_named, tiny_arch_configs, tiny_arch_model, tiny_hf_model  # noqa: E402
from tl_steer.sites import feature_shape  # noqa: E402

POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad",
       "The film was a joy from start to finish", "She smiled at the warm, kind welcome")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad",
       "The film was a bore from start to finish", "She frowned at the cold, rude welcome")
KINDS = ("embeddings (resid_pre 0)", "residual (resid_post 1)", "heads shift (z)", "attn_out", "mlp_out",
         "heads scale (SADI z)", "neurons scale (SADI mlp_post)")


def _kind_method(kind: str, bridge: Any, g: torch.Generator) -> Any:
    d, h, dh = bridge.cfg.d_model, bridge.cfg.n_heads, bridge.cfg.d_head
    dm = feature_shape(bridge, "mlp_post")[0]  # the activation's width (some configs' d_mlp is not it)
    vec = {"embeddings (resid_pre 0)": ("blocks.0.hook_resid_pre", (d,)), "residual (resid_post 1)":
           ("blocks.1.hook_resid_post", (d,)), "heads shift (z)": ("blocks.1.attn.hook_z", (h, dh)),
           "attn_out": ("blocks.0.hook_attn_out", (d,)), "mlp_out": ("blocks.1.hook_mlp_out", (d,))}
    if kind in vec:
        name, shape = vec[kind]
        return SteeringVectors({name: torch.randn(shape, generator=g)}, 2.0, "caa")
    site, n = ("z", h) if "z" in kind else ("mlp_post", dm)
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[0, : max(1, n // 4)] = True
    return Sadi(site, (1,), torch.rand(1, n, generator=g), mask, 4.0, dh if site == "z" else None)


def _cell(method: Any, bridge: Any, hf: Any, positions: str | None, tmp: Path) -> dict[str, Any]:
    try:
        out = export(method, bridge, tmp / f"x{len(list(tmp.iterdir()))}", hf_model=hf, positions=positions)
    except ts.SteeringError as e:
        return {"status": "refused", "why": str(e)}
    m = json.loads((out / MANIFEST).read_text())
    return {"status": "exported", "max_logit_diff": m["max_logit_diff"], "flags": m["config_flags"],
            "effect": max_logit_diff(bridge, method, hf, bridge.tokenizer)}  # vs the unedited model: the edit is real


def families() -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for mt in sorted(tiny_arch_configs()):
        bridge, hf = tiny_arch_model(mt)
        g = torch.Generator().manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            rows[mt] = {k: _cell(_kind_method(k, bridge, g), bridge, hf, "all", Path(tmp)) for k in KINDS}
        print(f"[export] {mt}: " + ", ".join(f"{k}={v['status']}" for k, v in rows[mt].items()), flush=True)
    return rows


def methods(model_name: str) -> dict[str, dict[str, Any]]:
    if model_name == "tiny-hf":
        bridge, hf = tiny_hf_model(with_hf=True)
    else:
        bridge = load_named(model_name)
        hf, _ = load_hf(model_name)
    sets = [ts.ContrastSet("mood", POS, NEG), ts.ContrastSet("tone", POS[::-1], NEG[::-1])]
    layer = bridge.cfg.n_layers // 2
    fitted = ts.fit_many(registry.names(), bridge, sets, ts.FitOptions(layer=layer, k=8, progress=False,
                                                                      extra={"epochs": 3}))
    fitted["sadi (mlp_post)"] = ts.fit("sadi", bridge, sets, ts.FitOptions(layer=layer, site="mlp_post", k=16,
                                                                           progress=False))
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in fitted.items():
            m = m.with_strength(4.0)
            rows[name] = {p or "default": _cell(m, bridge, hf, p, Path(tmp)) for p in ("all", "last_prompt", None)}
            print(f"[export] {model_name} {name}: " + ", ".join(f"{k}={v['status']}" for k, v in rows[name].items()),
                  flush=True)
    return rows


def _fmt(c: dict[str, Any]) -> str:
    if c["status"] == "refused":
        why = c["why"].split(": ", 1)[-1] if "cannot export" in c["why"] else c["why"]
        return f"refused: {why[:70].rstrip()}…"
    flags = f" (+{', '.join(c['flags'])})" if c["flags"] else ""
    return f"**{c['max_logit_diff']:.0e}**{flags}"


def render(r: dict[str, Any]) -> str:
    out = ["Exported cells show the max |Δ logit| of the reloaded checkpoint vs the steered bridge (plus the config "
           "flags set); every exported edit moves the logits of the unedited model by "
           f"{min(c['effect'] for row in r['families'].values() for c in row.values() if c['status'] == 'exported'):.2f}"
           " or more.\n", "| family | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 1) + "|"]
    for mt, row in r["families"].items():
        out.append(f"| {mt} | " + " | ".join(_fmt(row[k]) for k in KINDS) + " |")
    out += ["", f"Methods fitted on {r['model']} (strength 4):", "", "| method | all | last_prompt | default scope |",
            "|---|---|---|---|"]
    for name, row in r["methods"].items():
        out.append(f"| {name} | " + " | ".join(_fmt(row[k]) for k in ("all", "last_prompt", "default")) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--out", default="results/export_table", type=Path)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    r = {"model": args.model, "families": families(), "methods": methods(args.model)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export_table.json").write_text(json.dumps(r, indent=1))
    md = render(r)
    (args.out / "export_table.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
