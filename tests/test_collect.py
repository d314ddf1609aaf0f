import pytest
import torch

from tl_steer import SteeringError
from tl_steer.collect import collect
from tl_steer.methods.vector import SteeringVectors

TEXTS = ["hi", "hello there friend", "a b", "The quick brown fox jumps"]
NAMES = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z", "blocks.1.mlp.hook_post"]


def _reference(model, name, text, hooks=()):
    with model.hooks(fwd_hooks=list(hooks)):
        _, cache = model.run_with_cache(text, names_filter=[name])
    return cache[name][0]


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_collect_matches_run_with_cache(tiny, batch_size):
    c = collect(tiny, TEXTS, NAMES, batch_size=batch_size, progress=False)
    for n in NAMES:
        ref = torch.stack([_reference(tiny, n, t)[-1] for t in TEXTS])
        assert c[n].shape == ref.shape and c[n].device.type == "cpu" and c[n].dtype == torch.float32
        torch.testing.assert_close(c[n], ref, atol=1e-5, rtol=1e-5)


def test_collect_all_and_mean_positions(tiny):
    name = NAMES[0]
    c = collect(tiny, TEXTS, [name], read="all", batch_size=2, progress=False)
    m = collect(tiny, TEXTS, [name], read="mean", batch_size=3, progress=False)
    second = collect(tiny, TEXTS, [name], read=-2, batch_size=3, progress=False)
    for i, t in enumerate(TEXTS):
        ref = _reference(tiny, name, t)
        n = ref.shape[0]
        assert int(c.mask[i].sum()) == n
        torch.testing.assert_close(c[name][i][c.mask[i]], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m[name][i], ref.mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(second[name][i], ref[-2], atol=1e-5, rtol=1e-5)


def test_collect_under_steering(tiny):
    v = torch.ones(tiny.cfg.d_model)
    hooks = SteeringVectors({NAMES[0]: v}, strength=2.0).hooks(tiny)
    plain = collect(tiny, TEXTS, NAMES[:1], progress=False)
    steered = collect(tiny, TEXTS, NAMES[:1], hooks=hooks, progress=False)
    torch.testing.assert_close(steered[NAMES[0]], plain[NAMES[0]] + 2.0)


def test_collect_errors(tiny):
    with pytest.raises(SteeringError, match="list of texts"):
        collect(tiny, "hello", NAMES[:1])
    with pytest.raises(SteeringError, match="Near matches"):
        collect(tiny, TEXTS, ["blocks.0.hook_resid_pots"])
    with pytest.raises(SteeringError, match="read must be"):
        collect(tiny, TEXTS, NAMES[:1], read="first", progress=False)
    with pytest.raises(SteeringError, match="before the start"):
        collect(tiny, ["a"], NAMES[:1], read=-5, progress=False)


def test_collected_rows_do_not_keep_the_whole_activation_alive():
    """``read="last"`` keeps one row per text, not a view of the (batch, pos, ...) activation (memory grew with every
    position before)."""
    import torch

    from tl_steer.collect import _compact

    act = torch.randn(8, 50, 9, 64)
    last = act[:, -1]
    assert last.untyped_storage().nbytes() == act.numel() * 4  # the view pins everything
    kept = _compact(last)
    assert kept.untyped_storage().nbytes() == kept.numel() * 4 and torch.equal(kept, last)
    whole = torch.randn(3, 4)
    assert _compact(whole) is whole  # no copy when the tensor already owns its storage
