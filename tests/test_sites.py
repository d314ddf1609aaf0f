import pytest
import torch

from tl_steer import HookNameError, ShapeError, Site, hook_name
from tl_steer.sites import check_activation, feature_shape, site_of, validate_hook_name


@pytest.mark.parametrize("site", list(Site))
def test_hook_name_round_trip_and_exists(tiny, site):
    name = hook_name(1, site)
    assert validate_hook_name(tiny, name) == name
    assert site_of(name) == (1, site)


def test_canonical_names_map_back_to_sites():
    assert site_of("blocks.3.hook_out") == (3, Site.RESID_POST)
    assert site_of("blocks.3.attn.o.hook_in") == (3, Site.Z)
    assert site_of("blocks.0.mlp.out.hook_in") == (0, Site.MLP_POST)


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
