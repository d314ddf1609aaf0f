"""Save and load steering methods: a safetensors file of tensors plus a JSON manifest.

A saved method is a directory::

    my_vector/
      tensors.safetensors   # every tensor of the method
      manifest.json         # method, versions, hook names, site, model fingerprint, positions, config, sha256

Methods opt in by implementing ``to_state() -> (tensors: dict[str, Tensor], config: dict)`` and a classmethod
``from_state(tensors, config)``, and registering with :func:`register`. :func:`load` checks the manifest's format
version, the tensors' checksum and, when a model is given, the model fingerprint and that every hook name exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from .errors import ManifestError

FORMAT_VERSION = 1
TENSORS = "tensors.safetensors"
MANIFEST = "manifest.json"

_REGISTRY: dict[str, type] = {}


class Saveable(Protocol):
    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]: ...

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> Saveable: ...


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a method saveable under ``name`` (stored in the manifest's ``method`` field)."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ManifestError(f"method name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        cls._tl_steer_method = name  # type: ignore[attr-defined]
        return cls

    return deco


def model_fingerprint(model: Any) -> dict[str, Any]:
    """Architecture numbers plus a checksum of the first embedding rows: enough to tell models apart."""
    cfg = model.cfg
    fp: dict[str, Any] = {
        k: getattr(cfg, k, None)
        for k in ("model_name", "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_key_value_heads")
    }
    try:
        w = model.W_E if hasattr(model, "W_E") else None
    except Exception:  # noqa: BLE001 - some bridges build W_E lazily and may fail
        w = None
    if isinstance(w, Tensor):
        fp["embed_checksum"] = round(float(w[:16].detach().double().sum().cpu()), 3)
    return fp


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(method: Any, path: str | Path, model: Any = None, **extra: Any) -> Path:
    """Write ``method`` to the directory ``path`` (created). ``extra`` goes into the manifest's ``extra`` field."""
    from safetensors.torch import save_file

    from . import __version__

    name = getattr(type(method), "_tl_steer_method", None)
    if name is None or not hasattr(method, "to_state"):
        raise ManifestError(f"{type(method).__name__} is not a saveable tl_steer method (no @register / to_state)")
    tensors, config = method.to_state()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(flat, str(path / TENSORS))
    manifest = {
        "format_version": FORMAT_VERSION,
        "tl_steer_version": __version__,
        "method": name,
        "hook_names": list(method.hook_names() if callable(getattr(method, "hook_names", None)) else config.get("hook_names", [])),
        "config": config,
        "model": model_fingerprint(model) if model is not None else None,
        "tensors_sha256": _sha256(path / TENSORS),
        "extra": extra,
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise ManifestError(f"{path} is not a saved tl_steer method: {MANIFEST} is missing")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{mf} is not valid JSON ({e}); the file is corrupt, save the method again") from None
    for key in ("format_version", "method", "config", "tensors_sha256"):
        if key not in manifest:
            raise ManifestError(f"{mf} lacks the field {key!r}; the file is corrupt or not from tl_steer")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ManifestError(
            f"{mf} has format_version {manifest['format_version']}, this tl_steer reads {FORMAT_VERSION}"
        )
    return manifest


def load(path: str | Path, model: Any = None, expect: str | type | None = None, strict: bool = True) -> Any:
    """Load a saved method. With ``model``, check the fingerprint (``strict``) and that every hook name exists."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .sites import validate_hook_name

    path = Path(path)
    manifest = read_manifest(path)
    tf = path / TENSORS
    if not tf.is_file():
        raise ManifestError(f"{path}: {TENSORS} is missing")
    digest = _sha256(tf)
    if digest != manifest["tensors_sha256"]:
        raise ManifestError(
            f"{tf} does not match its manifest checksum (sha256 {digest[:12]}… vs {manifest['tensors_sha256'][:12]}…): "
            "the file is corrupt or was edited; save the method again"
        )
    name = manifest["method"]
    if isinstance(expect, type):
        expect = getattr(expect, "_tl_steer_method", expect.__name__)
    if expect is not None and name != expect:
        raise ManifestError(f"{path} holds a {name!r} method, not {expect!r}")
    cls = _REGISTRY.get(name)
    if cls is None:
        _import_methods()
        cls = _REGISTRY.get(name)
    if cls is None:
        raise ManifestError(f"{path}: unknown method {name!r}; known: {sorted(_REGISTRY)}")
    try:
        tensors = load_file(str(tf))
    except (SafetensorError, OSError) as e:
        raise ManifestError(f"{tf} could not be read ({e}); the file is corrupt") from None
    if model is not None:
        saved = manifest.get("model")
        if saved is not None and strict:
            now = model_fingerprint(model)
            diff = {k: (saved.get(k), now.get(k)) for k in saved if k != "model_name" and saved.get(k) != now.get(k)}
            if diff:
                raise ManifestError(
                    f"{path} was fitted on another model: (saved, this model) differ in {diff}. "
                    "Refit on this model, or pass strict=False to skip the check."
                )
        for hn in manifest.get("hook_names") or []:
            validate_hook_name(model, hn)
    method = cls.from_state(tensors, manifest["config"])
    device = getattr(getattr(model, "cfg", None), "device", None) if model is not None else None
    if device is not None and hasattr(method, "to"):
        method = method.to(torch.device(device))
    return method


def _import_methods() -> None:
    import importlib
    import pkgutil

    from . import methods

    for info in pkgutil.iter_modules(methods.__path__):
        importlib.import_module(f"{methods.__name__}.{info.name}")
