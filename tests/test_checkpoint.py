"""Checkpoint reading and strict loading: clear errors for missing, corrupt and mismatched files."""
from __future__ import annotations

import os

import pytest
import torch

from fastsam.build_sam import build_sam, sam_model_registry
from fastsam.checkpoint import guess_model_type


@pytest.fixture(scope="module")
def vit_t_checkpoint(tmp_path_factory):
    """A bare vit_t state dict in the official key layout (seeded random weights): the form of an official checkpoint."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "vit_t.pth"
    torch.save(build_sam("vit_t").state_dict(), path)
    return path


def test_missing_checkpoint_names_the_path(tmp_path):
    path = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*absent.pth"):
        build_sam("vit_t", checkpoint=path)


def test_corrupt_checkpoint_raises_runtime_error(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(os.urandom(4096))
    expected = r"could not read checkpoint .*corrupt.pth: .*expected a state dict saved with torch.save"
    with pytest.raises(RuntimeError, match=expected) as info:
        build_sam("vit_t", checkpoint=path)
    # torch's own advice (retry with weights_only=False, i.e. run arbitrary pickled code) is not repeated.
    assert "weights_only" not in str(info.value)


def test_truncated_checkpoint_raises_runtime_error(vit_t_checkpoint, tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(vit_t_checkpoint.read_bytes()[:1_000_000])
    with pytest.raises(RuntimeError, match=r"could not read checkpoint .*truncated.pth: .*torch.save"):
        build_sam("vit_t", checkpoint=path)


def test_checkpoint_without_tensors_is_rejected(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(RuntimeError, match=r"list.pth: it holds a list, not a mapping of parameter names to tensors"):
        build_sam("vit_t", checkpoint=path)


def test_state_dict_wrapped_under_model_loads(tmp_path):
    torch.manual_seed(1)
    source = build_sam("vit_t")
    path = tmp_path / "trainer.pth"
    torch.save({"model": source.state_dict(), "epoch": 3}, path)
    loaded = build_sam("vit_t", checkpoint=path)
    for key, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_vit_t_checkpoint_into_vit_b_says_what_it_looks_like(vit_t_checkpoint):
    file_keys = set(torch.load(vit_t_checkpoint, map_location="cpu", weights_only=True))
    with torch.device("meta"):
        vit_b_keys = set(sam_model_registry["vit_b"]().state_dict())
    missing, unexpected = len(vit_b_keys - file_keys), len(file_keys - vit_b_keys)
    with pytest.raises(ValueError) as info:
        build_sam("vit_b", checkpoint=vit_t_checkpoint)
    message = str(info.value)
    assert f"checkpoint {vit_t_checkpoint} does not match model type 'vit_b'" in message
    assert f"{missing} missing keys (image_encoder.pos_embed, " in message
    assert f"{unexpected} unexpected keys (image_encoder.patch_embed.seq.0.c.weight, " in message
    assert message.endswith("it looks like a 'vit_t' checkpoint")
    assert message.count("\n") == 0


def test_shape_mismatch_is_reported(vit_t_checkpoint, tmp_path):
    state = torch.load(vit_t_checkpoint, map_location="cpu", weights_only=True)
    state["mask_decoder.iou_prediction_head.layers.2.weight"] = torch.zeros(5, 256)
    path = tmp_path / "reshaped.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        build_sam("vit_t", checkpoint=path)
    message = str(info.value)
    assert "1 keys with the wrong shape" in message
    assert "mask_decoder.iou_prediction_head.layers.2.weight (5, 256) vs (4, 256)" in message
    assert "missing" not in message and "unexpected" not in message


@pytest.mark.parametrize("model_type", ["vit_t", "vit_b", "vit_l", "vit_h"])
def test_model_type_is_recognised_from_keys(model_type):
    with torch.device("meta"):
        state = sam_model_registry[model_type]().state_dict()
    assert guess_model_type(state) == model_type


def test_unknown_model_type_lists_valid_types():
    expected = r"unknown model_type 'vit_x'; expected one of 'vit_t', 'vit_b', 'vit_l', 'vit_h', 'default'"
    with pytest.raises(ValueError, match=expected):
        build_sam("vit_x")
