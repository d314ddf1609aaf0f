"""Save and load fitted steering methods: a safetensors file of tensors plus a JSON manifest.

A saved method is a directory::

    my_vector/
      tensors-<sha12>.safetensors   # every tensor of the method (content-addressed)
      manifest.json                 # method, state, versions, hook names, model fingerprint, config, sha256

Every registered method ([`tl_steer.registry`][tl_steer.registry]) is saveable: its fitted type has ``to_state()`` and
``from_state(tensors, config)`` and a ``state`` name. [`load_method()`][tl_steer.io.load_method] validates the manifest against one schema, the
tensors' checksum and, when a model is given, the model fingerprint and every hook name; every failure is a
[`ManifestError`][tl_steer.errors.ManifestError] naming the field.

Saving is atomic: the new tensors go to a new file, and replacing ``manifest.json`` (``os.replace``) is the commit
point, so an interrupted save leaves the previous artefact loadable. Overwriting needs ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._types import TransformerBridge
from .errors import ManifestError, SteeringError, ensure_finite

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LEGACY_TENSORS = "tensors.safetensors"  #: format 1's fixed file name

#: field -> accepted types (``None`` in the tuple: may be null); every manifest is checked against this
SCHEMA: dict[str, tuple[Any, ...]] = {
    "format_version": (int,),
    "tl_steer_version": (str,),
    "method": (str,),
    "state": (str,),
    "hook_names": (list,),
    "config": (dict,),
    "model": (dict, type(None)),
    "tensors_file": (str,),
    "tensors_sha256": (str,),
    "extra": (dict,),
}
class FingerprintWarning(UserWarning):
    """[`load_method()`][tl_steer.io.load_method] with ``strict=False`` loaded a method fitted on another model."""


_DTYPE_RTOL = {"torch.float32": 2.0**-20, "torch.float64": 2.0**-20, "torch.float16": 2.0**-9,
               "torch.bfloat16": 2.0**-7}


#: HF config keys that do not change what the model computes (names, dtype, bookkeeping, special token ids)
_CONFIG_NOISE = frozenset({
    "_name_or_path", "name_or_path", "torch_dtype", "dtype", "transformers_version", "architectures",
    "_attn_implementation", "_attn_implementation_internal", "attn_implementation", "_commit_hash", "use_cache",
    "output_attentions", "output_hidden_states", "return_dict", "quantization_config", "bos_token_id",
    "eos_token_id", "pad_token_id", "id2label", "label2id", "_experts_implementation", "tokenizer_class",
})
#: TL config fields that describe the computation of a TL-native model (no HF config)
_NATIVE_FIELDS = ("original_architecture", "normalization_type", "act_fn", "positional_embedding_type", "gated_mlp",
                  "parallel_attn_mlp", "final_rms", "attn_only", "n_ctx")


def _architecture(model: TransformerBridge) -> tuple[str | None, str | None]:
    """``(architecture, sha256 of the computation-relevant config)``: the HF config's ``model_type`` and every key
    but names, dtype and bookkeeping; for a TL-native model, its TL config's structural fields."""
    hf_cfg = getattr(getattr(model, "original_model", None), "config", None)
    if hf_cfg is not None and hasattr(hf_cfg, "to_dict"):
        d = {k: v for k, v in hf_cfg.to_dict().items() if k not in _CONFIG_NOISE and not k.startswith("_")}
        arch = str(getattr(hf_cfg, "model_type", None) or type(hf_cfg).__name__)
    else:
        cfg = getattr(model, "cfg", None)
        d = {k: getattr(cfg, k, None) for k in _NATIVE_FIELDS}
        arch = f"native:{d.get('original_architecture') or 'tl'}"
    blob = json.dumps(d, sort_keys=True, default=str)
    return arch, hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_fingerprint(model: TransformerBridge) -> dict[str, Any]:
    """Architecture (family and a hash of its computation-relevant config), sizes, the weights' dtype, and 32
    embedding values (fp32): enough to tell models apart, also random-weight models of equal shapes."""
    cfg = model.cfg
    fp: dict[str, Any] = {
        k: getattr(cfg, k, None)
        for k in ("model_name", "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_key_value_heads")
    }
    fp["architecture"], fp["config_sha"] = _architecture(model)
    from .collect import default_prepend_bos

    fp["prepend_bos"] = default_prepend_bos(model)  # the BOS rule fitting used by default (recorded, not compared)
    try:
        w = model.W_E if hasattr(model, "W_E") else None
    except Exception:  # noqa: BLE001 - some bridges build W_E lazily and may fail
        w = None
    if isinstance(w, Tensor):
        flat = w.detach().flatten()
        idx = (torch.arange(32, dtype=torch.long) * (flat.numel() - 1) // 31).to(flat.device)  # exact integers
        fp["dtype"] = str(w.dtype)
        fp["embed_sample"] = [float(x) for x in flat[idx].float().cpu()]
    return fp


def _check_fingerprint(fp: Any, where: str) -> None:
    """A stored fingerprint is a dict of JSON scalars, ``embed_sample`` a list of numbers (ManifestError else)."""
    if not isinstance(fp, dict):
        raise ManifestError(f"{where}: field 'model' must be an object, got {type(fp).__name__}; the file is corrupt")
    for k, v in fp.items():
        if k == "embed_sample":
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise ManifestError(f"{where}: field 'model.embed_sample' must be a list of numbers; the file is corrupt")
        elif v is not None and not isinstance(v, (str, int, float, bool)):
            raise ManifestError(
                f"{where}: field 'model.{k}' must be a number, string or null, got {type(v).__name__}; the file is corrupt"
            )


def fingerprint_diff(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Fields in which two fingerprints disagree; embedding values are compared in fp32 with a tolerance set by the
    lower-precision dtype of the two (the same model cast to bf16 matches)."""
    _check_fingerprint(saved, "the saved fingerprint")
    diff = {k: (saved.get(k), now.get(k)) for k in saved
            if k not in ("model_name", "dtype", "embed_sample", "embed_checksum", "prepend_bos")
            and saved.get(k) != now.get(k)}
    a, b = saved.get("embed_sample"), now.get("embed_sample")
    if a is not None and b is not None:
        rtol = max(_DTYPE_RTOL.get(str(saved.get("dtype")), 2.0**-7), _DTYPE_RTOL.get(str(now.get("dtype")), 2.0**-7))
        ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        if ta.shape != tb.shape or not torch.allclose(ta, tb, rtol=2 * rtol, atol=1e-6):
            diff["embed_sample"] = ("saved values", "different values")
    return diff


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _registry() -> Any:
    from . import (
        methods,  # noqa: F401 - importing it registers every method
        registry,
    )

    return registry


def save(method: Any, path: str | Path, model: TransformerBridge | None = None, overwrite: bool = False, **extra: Any) -> Path:
    """Write a fitted method to a directory: a JSON manifest plus one safetensors file, atomically.

    An existing artefact is replaced only with ``overwrite=True``; until the new manifest is in place the old one
    stays loadable. Save touches only files it writes: the new tensors file, ``manifest.json``, its own temporary
    files (``.tensors-*.tmp``, ``.manifest.json-*.tmp``, removed on error and by the next save), and, after the new
    manifest is committed, the one tensors file the *previous* manifest named. Other files in the folder (your own
    ``tensors*.safetensors`` included) are never removed. Concurrent saves to one path (threads or processes) are
    serialised by an advisory lock on the folder, so the last one wins and the artefact always loads.

    Args:
        method: a fitted steering method (any registered method's object).
        path: the directory to write (created if needed).
        model: the model it was fitted on; its fingerprint is stored so that loading onto another model fails.
        overwrite: replace an existing artefact at ``path``.
        **extra: JSON-serialisable notes stored in the manifest's ``extra`` field.

    Returns:
        The directory written.
    """
    from safetensors.torch import save_file

    from ._version import __version__

    registry = _registry()
    state = getattr(type(method), "state", None)
    if state not in registry.state_classes() or not hasattr(method, "to_state"):
        raise ManifestError(
            f"{type(method).__name__} is not a registered tl_steer method; register its MethodSpec in tl_steer.methods"
        )
    if isinstance(getattr(method, "strength", None), Tensor):
        raise SteeringError(
            f"save({type(method).__name__}): the method holds per-row strengths {method.strength.tolist()!r}; a saved "
            "method has one strength: save method.with_strength(s)"
        )
    tensors, config = method.to_state()
    ensure_finite(tensors, f"save({type(method).__name__})")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SteeringError(f"{path} exists and is not a directory; choose another path")
    _refuse_overwrite(path, overwrite)  # before any work; again under the lock (another save may have won)
    manifest = {
        "format_version": FORMAT_VERSION,
        "tl_steer_version": __version__,
        "method": str(method.method),
        "state": state,
        "hook_names": list(method.hook_names()),
        "config": config,
        "model": model_fingerprint(model) if model is not None else None,
        "tensors_file": "",
        "tensors_sha256": "",
        "extra": extra,
    }
    for key in ("config", "model", "extra"):
        try:
            json.dumps(manifest[key], allow_nan=False)
        except (TypeError, ValueError) as e:
            raise SteeringError(
                f"save({type(method).__name__}): manifest field {key!r} is not plain JSON ({e}); pass numbers, "
                "strings, lists and dicts (a tensor strength? use method.with_strength(float))"
            ) from None
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        path.mkdir(parents=True, exist_ok=True)
        with _dir_lock(path):
            _refuse_overwrite(path, overwrite)
            previous = _previous_tensors(path)
            _remove_stale_temporaries(path)
            fd, tmp = tempfile.mkstemp(prefix=".tensors-", suffix=".tmp", dir=path)
            os.close(fd)
            try:
                save_file(flat, tmp)
                digest = _sha256(Path(tmp))
                tensors_file = f"tensors-{digest[:12]}.safetensors"
                os.replace(tmp, path / tensors_file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            manifest["tensors_file"], manifest["tensors_sha256"] = tensors_file, digest
            atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
            if previous is not None and previous != tensors_file:  # the replaced artefact's tensors, now unreferenced
                (path / previous).unlink(missing_ok=True)
    except PermissionError as e:
        raise SteeringError(f"cannot write to {path} ({e.strerror}); choose a writable directory") from None
    return path


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if (path / MANIFEST).exists() and not overwrite:
        raise SteeringError(f"{path} already holds a saved method; pass overwrite=True (CLI: --force) to replace it")


_TEMP_PATTERNS = (".tensors-*.tmp", f".{MANIFEST}-*.tmp")
_THREAD_LOCKS: dict[str, Any] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _dir_lock(path: Path) -> Iterator[None]:
    """Serialise saves to one folder: a per-process lock (threads) plus ``flock`` on the folder itself (processes).

    The folder's own descriptor carries the lock, so no lock file is left behind."""

    key = str(path.resolve())
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: the thread lock only
            yield
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _previous_tensors(path: Path) -> str | None:
    """The tensors file the manifest now in ``path`` names (the only tensors file save may remove), else None."""
    try:
        name = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("tensors_file")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(name, str) and name and "/" not in name and not name.startswith(".") and name.endswith(".safetensors"):
        return name
    return None


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of saves that were interrupted (killed) before they could clean up; called under the lock,
    when no other save to this folder is running. Only save's own temporary names match."""
    for pattern in _TEMP_PATTERNS:
        for old in path.glob(pattern):
            old.unlink(missing_ok=True)


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``target``, then ``os.replace`` it (readers never see half a file)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _upgrade(manifest: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: ``method`` held the state name, tensors had a fixed file name."""
    registry = _registry()
    by_state: dict[str, list[str]] = {}
    for spec in registry.specs():
        by_state.setdefault(spec.cls.state, []).append(spec.name)
    m = dict(manifest)
    m.setdefault("state", m.get("method"))
    owners = by_state.get(m["state"], []) if isinstance(m["state"], str) else []
    m["method"] = owners[0] if len(owners) == 1 else "vectors"  # a shared apply side: no method recorded
    m.setdefault("tensors_file", LEGACY_TENSORS)
    m.setdefault("tl_steer_version", "0.1.0")
    m.setdefault("hook_names", m.get("config", {}).get("hook_names", []) if isinstance(m.get("config"), dict) else [])
    m.setdefault("model", None)
    m.setdefault("extra", {})
    m["format_version"] = FORMAT_VERSION
    return m


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The validated manifest of a saved method ([`ManifestError`][tl_steer.errors.ManifestError] naming the field otherwise)."""
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise ManifestError(f"{path} is not a saved tl_steer method: {MANIFEST} is missing")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{mf} is not valid JSON ({e}); the file is corrupt, save the method again") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{mf} must hold a JSON object, got {type(manifest).__name__}; save the method again")
    version = manifest.get("format_version")
    if version == 1:
        manifest = _upgrade(manifest)
    elif version != FORMAT_VERSION:
        raise ManifestError(f"{mf}: field 'format_version' is {version!r}, this tl_steer reads 1 and {FORMAT_VERSION}")
    for key, types in SCHEMA.items():
        if key not in manifest:
            raise ManifestError(f"{mf} lacks the field {key!r}; the file is corrupt or not from tl_steer")
        if not isinstance(manifest[key], types) or isinstance(manifest[key], bool):
            raise ManifestError(
                f"{mf}: field {key!r} must be {' or '.join(t.__name__ for t in types)}, "
                f"got {type(manifest[key]).__name__}; the file is corrupt"
            )
    if not all(isinstance(h, str) for h in manifest["hook_names"]):
        raise ManifestError(f"{mf}: field 'hook_names' must be a list of strings")
    if manifest["model"] is not None:
        _check_fingerprint(manifest["model"], str(mf))
    if "/" in manifest["tensors_file"] or manifest["tensors_file"].startswith("."):
        raise ManifestError(f"{mf}: field 'tensors_file' must be a file name inside the directory")
    return manifest


def load_method(path: str | Path, model: TransformerBridge | None = None, expect: str | type | None = None, strict: bool = True) -> Any:
    """Load a method written by [`save()`][tl_steer.io.save].

    Args:
        path: the artefact's directory.
        model: when given, check the stored fingerprint (see ``strict``) and that every hook name exists on it, and
            move the method to the model's device.
        expect: a registered method name or class the artefact must hold (a clear error otherwise).
        strict: with ``model``, a fingerprint mismatch raises; ``False`` only warns
            ([`FingerprintWarning`][tl_steer.io.FingerprintWarning]).

    Returns:
        The fitted method, ready for ``method.hooks(model)``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .sites import validate_hook_name

    registry = _registry()
    path = Path(path)
    manifest = read_manifest(path)
    tf = path / manifest["tensors_file"]
    if not tf.is_file():
        raise ManifestError(f"{path}: {manifest['tensors_file']} is missing")
    digest = _sha256(tf)
    if digest != manifest["tensors_sha256"]:
        raise ManifestError(
            f"{tf} does not match its manifest checksum (sha256 {digest[:12]}… vs {manifest['tensors_sha256'][:12]}…): "
            "the file is corrupt or was edited; save the method again"
        )
    name = manifest["method"]
    if isinstance(expect, type):
        expect = getattr(expect, "method", expect.__name__)
    if expect is not None:
        want = registry.get(expect).name
        if registry.resolve(name) != want:
            raise ManifestError(f"{path} holds a {name!r} method, not {want!r}; load it as {name!r}")
    cls = registry.state_classes().get(manifest["state"])
    if cls is None:
        raise ManifestError(
            f"{path}: field 'state' is {manifest['state']!r}, not one of {sorted(registry.state_classes())}"
        )
    try:
        # own, aligned storage: tensors read from the file can sit at unaligned offsets, and float kernels then take
        # another path (MAT-Steer's edit differed by 1e-5 from the method that was saved)
        tensors = {k: v.clone() for k, v in load_file(str(tf)).items()}
    except (SafetensorError, OSError) as e:
        raise ManifestError(f"{tf} could not be read ({e}); the file is corrupt") from None
    try:
        ensure_finite(tensors, str(tf))
    except SteeringError as e:
        raise ManifestError(f"{e}; the file is corrupt") from None
    if model is not None:
        saved = manifest.get("model")
        diff = fingerprint_diff(saved, model_fingerprint(model)) if saved is not None else {}
        if diff and strict:
            raise ManifestError(
                f"{path} was fitted on another model: (saved, this model) differ in {diff}. "
                "Refit on this model, or pass strict=False to load it anyway (with a warning)."
            )
        if diff:
            warnings.warn(
                f"{path} was fitted on another model: (saved, this model) differ in {diff}; loaded anyway "
                "(strict=False). Its steering may not mean the same on this model.",
                FingerprintWarning, stacklevel=2,
            )
        for hn in manifest["hook_names"]:
            validate_hook_name(model, hn)
    try:
        method = cls.from_state(tensors, manifest["config"])
    except ManifestError:
        raise
    except SteeringError as e:
        raise ManifestError(f"{path}: field 'config' holds a value the method refuses ({e}); save it again") from None
    except KeyError as e:
        raise ManifestError(f"{path}: field 'config' lacks {e.args[0]!r}; the file is corrupt, save it again") from None
    except (TypeError, ValueError, AttributeError, IndexError) as e:
        raise ManifestError(f"{path}: field 'config' does not match the tensors ({e}); save it again") from None
    if model is not None:
        check = getattr(method, "check_model", None)
        if callable(check):
            check(model)
        device = getattr(getattr(model, "cfg", None), "device", None)
        if device is not None:
            method = method.to(torch.device(device))
    return method


#: the former name of [`load_method()`][tl_steer.io.load_method] (``tl_steer.load`` loads a *model*; this loads a
#: fitted method)
load = load_method

