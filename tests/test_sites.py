import pytest
import torch

from tl_steer import HookNameError, ShapeError, Site, hook_name
from tl_steer.sites import check_activation, feature_shape, site_of, validate_hook_name


@pytest.mark.parametrize("site", list(Site))
def test_hook_name_round_trip_and_exists(tiny, site):
    name = hook_name(1, site)
    assert validate_hook_name(tiny, name) == name
    assert site_of(name) == (1, site)


@pytest.mark.parametrize("site", list(Site))
def test_canonical_names_resolve_through_the_models_alias_table(tiny, site):
    legacy = hook_name(1, site)
    canonical = tiny.hook_dict[legacy].name  # what a hook callee sees as hook.name
    assert site_of(canonical, tiny) == (1, site)


def test_canonical_names_need_the_model():
    with pytest.raises(HookNameError, match="resolve it with the model"):
        site_of("blocks.3.attn.hook_out")


def test_a_canonical_name_that_is_another_tensor_is_not_a_site(tiny, monkeypatch):
    """On post-norm models (Gemma) attn.hook_out is the tensor before the post-attention norm: a different HookPoint
    from hook_attn_out. Simulate that by pointing the alias at another HookPoint."""
    hd = dict(tiny.hook_dict)
    hd["blocks.1.hook_attn_out"] = hd["blocks.1.ln2.hook_in"]
    fake = type("M", (), {"hook_dict": hd})()
    with pytest.raises(HookNameError, match="not a steerable site on this model"):
        site_of("blocks.1.attn.hook_out", fake)


def test_unknown_hook_lists_near_matches(tiny):
    with pytest.raises(HookNameError, match=r"blocks\.1\.hook_resid_pots.*Near matches.*blocks\.1\.hook_resid_post"):
        validate_hook_name(tiny, "blocks.1.hook_resid_pots")
    with pytest.raises(HookNameError, match=r"has 2 layers"):
        validate_hook_name(tiny, "blocks.7.hook_resid_post")
    with pytest.raises(HookNameError, match="unknown site"):
        hook_name(0, "resid")
    with pytest.raises(HookNameError, match="not a steerable site"):
        site_of("blocks.0.attn.hook_pattern")


def test_feature_shapes_match_real_activations(tiny):
    names = [hook_name(0, s) for s in Site]
    _, cache = tiny.run_with_cache("hello", names_filter=names)
    for s, n in zip(Site, names, strict=True):
        assert tuple(cache[n].shape[2:]) == feature_shape(tiny, s)


def test_check_activation_names_hook_and_shapes():
    class H:
        name = "blocks.0.hook_out"

    check_activation(torch.zeros(2, 3, 8), H(), (8,))
    with pytest.raises(ShapeError, match=r"blocks\.0\.hook_out.*\(batch, pos, 8\).*\(2, 3, 4, 2\)"):
        check_activation(torch.zeros(2, 3, 4, 2), H(), (8,))
