"""The lm-evaluation-harness plug-in: a task YAML over the local SST-2 file, scored through lm-eval (in process and
through the ``lm_eval`` command), agrees with ``tl_steer.eval`` per choice, steered and unsteered, under each scope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tl_steer as ts

lm_eval = pytest.importorskip("lm_eval", reason="the harness extra (lm-eval 0.4.x) is not installed")

from tl_steer import harness  # noqa: E402
from tl_steer.eval.scoring import score_items  # noqa: E402
from tl_steer.eval.tasks import load_sst2  # noqa: E402
from tl_steer.models import tiny_hf_model  # noqa: E402

POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")
LIMIT = 6

TASK_YAML = """task: sst2_tl_steer
dataset_path: csv
dataset_kwargs:
  data_files:
    validation: {path}
  delimiter: "\\t"
  quoting: 3
output_type: multiple_choice
validation_split: validation
doc_to_text: "Review: {{{{text.strip()}}}}\\nSentiment:"
doc_to_choice: [" negative", " positive"]
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def tasks_dir(data_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tasks")
    (d / "sst2_tl_steer.yaml").write_text(TASK_YAML.format(path=data_dir / "sst2" / "dev.tsv"))
    return d


@pytest.fixture(scope="module")
def fitted():
    bridge = tiny_hf_model()
    caa = ts.fit("caa", bridge, [ts.ContrastSet("mood", POS, NEG)], ts.FitOptions(layer=1, progress=False))
    return bridge, caa.with_strength(4.0)


def _per_choice(results: dict) -> list[list[float]]:
    samples = sorted(results["samples"]["sst2_tl_steer"], key=lambda s: s["doc_id"])
    return [[float(r[0][0]) for r in s["resps"]] for s in samples]


def _reference(bridge, method, positions, data_dir) -> list[list[float]]:
    items = load_sst2(data_dir)[:LIMIT]
    hooks = None if method is None else method.hooks(bridge, positions=positions)
    return [list(s.logprob) for s in score_items(bridge, items, hooks)]


@pytest.mark.data
@pytest.mark.parametrize("positions", [None, "all", "last_prompt", "generated"])
def test_simple_evaluate_agrees_with_tl_steer_eval(fitted, tasks_dir, data_dir, positions):
    from lm_eval.tasks import TaskManager

    bridge, caa = fitted
    method = None if positions is None else caa
    lm = harness.SteeredLM(bridge, method, positions=positions, batch_size=4)
    res = lm_eval.simple_evaluate(model=lm, tasks=["sst2_tl_steer"], limit=LIMIT, log_samples=True,
                                  task_manager=TaskManager(include_path=str(tasks_dir)))
    got = torch.tensor(_per_choice(res))
    want = torch.tensor(_reference(bridge, method, positions, data_dir))
    assert got.shape == (LIMIT, 2)
    assert (got - want).abs().max() < 1e-4, (got - want).abs().max()
    if method is not None:  # the steering is real: scores move away from the unsteered ones
        base = torch.tensor(_reference(bridge, None, None, data_dir))
        assert (got - base).abs().max() > 1e-2


def test_registered_by_name_next_to_lm_evals_own_models():
    from lm_eval.api.registry import get_model

    assert get_model("tl_steer") is harness.SteeredLM
    assert get_model("hf").__name__ == "HFLM"  # lm-eval's own models still resolve


def test_model_args_string(fitted, tmp_path):
    bridge, caa = fitted
    ts.save(caa, tmp_path / "caa", bridge)
    lm = harness.SteeredLM.create_from_arg_string(
        f"model=tiny-hf,method={tmp_path / 'caa'},positions=last_prompt,strength=2.5", {"batch_size": 2})
    assert lm.batch_size == 2 and lm.strength == 2.5 and lm.positions == "last_prompt"
    assert [n for n, _ in lm.hooks] == caa.hook_names()
    with pytest.raises(ts.SteeringError, match="unknown"):
        harness.SteeredLM.create_from_arg_string("model=tiny-hf,strenght=2")


def _run(argv: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env_extra}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.data
def test_the_lm_eval_command_runs_it(fitted, tasks_dir, data_dir, tmp_path):
    """``lm_eval --model tl_steer`` through the installed ``.pth`` (``python -m tl_steer.harness --install``, which
    scripts/setup.sh runs), with the saved method; same numbers as tl_steer.eval."""
    bridge, caa = fitted
    pth = harness._site_dir() / harness.PTH
    if not pth.exists():
        pytest.fail(f"{pth} is missing: run `python -m tl_steer.harness --install` (scripts/setup.sh does)")
    ts.save(caa, tmp_path / "caa", bridge)
    exe = Path(sys.executable).with_name("lm_eval")
    out = tmp_path / "out"
    p = _run([str(exe), "--model", "tl_steer", "--model_args",
              f"model=tiny-hf,method={tmp_path / 'caa'},positions=last_prompt", "--tasks", "sst2_tl_steer",
              "--include_path", str(tasks_dir), "--limit", str(LIMIT), "--batch_size", "3", "--log_samples",
              "--output_path", str(out)], {}, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    sample_files = list(out.rglob("samples_sst2_tl_steer_*.jsonl"))
    assert len(sample_files) == 1, list(out.rglob("*"))
    samples = [json.loads(line) for line in sample_files[0].read_text().splitlines()]
    got = torch.tensor([[float(r[0][0]) for r in s["resps"]] for s in sorted(samples, key=lambda s: s["doc_id"])])
    want = torch.tensor(_reference(bridge, caa, "last_prompt", data_dir))
    assert (got - want).abs().max() < 1e-4


def test_pth_hook_registers_lazily(tmp_path):
    """The .pth line: a fresh interpreter knows ``tl_steer`` in get_model without having imported tl_steer before."""
    harness.install(tmp_path)
    code = ("import site, sys; site.addsitedir(sys.argv[1]); "
            "assert 'tl_steer' not in sys.modules and 'torch' not in sys.modules; "
            "from lm_eval.api.registry import get_model; print(get_model('tl_steer').__name__, get_model('hf').__name__)")
    p = _run([sys.executable, "-c", code, str(tmp_path)], {}, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["SteeredLM", "HFLM"]


@pytest.mark.slow
@pytest.mark.data
def test_smollm2_agrees(smollm2, tasks_dir, data_dir):
    from lm_eval.tasks import TaskManager

    caa = ts.fit("caa", smollm2, [ts.ContrastSet("mood", POS, NEG)], ts.FitOptions(layer=12, progress=False))
    for method, positions in ((None, None), (caa.with_strength(4.0), "last_prompt"), (caa.with_strength(4.0), "all")):
        lm = harness.SteeredLM(smollm2, method, positions=positions, batch_size=4)
        res = lm_eval.simple_evaluate(model=lm, tasks=["sst2_tl_steer"], limit=LIMIT, log_samples=True,
                                      task_manager=TaskManager(include_path=str(tasks_dir)))
        got = torch.tensor(_per_choice(res))
        want = torch.tensor(_reference(smollm2, method, positions, data_dir))
        print(f"[harness] smollm2 positions={positions}: max |Δ| per choice {(got - want).abs().max():.2e}")
        assert (got - want).abs().max() < 1e-4, (positions, (got - want).abs().max())
