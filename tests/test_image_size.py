"""Any image size for every model: resizing a checkpoint's size-dependent weights on load.

The ViT case uses a real vit_b built at 1024 from seeded random weights, its position embedding and
rel-pos tables filled with random values (they are zero-initialised, which would make every resize look
right), saved as an official-layout state dict. The 1024 encoder is never run (it costs tens of seconds
on CPU): the load at 1024 is checked by comparing state dicts. Three vit_b are built in all (1024, 512, 768).
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from fastsam.build_sam import sam_model_registry
from fastsam.checkpoint import load_checkpoint, load_state_dict_strictly
from fastsam.checkpoint_resize import POS_EMBED_KEY, fit_to_model, resize_pos_embed, resize_rel_pos
from fastsam.modeling.image_encoder import get_rel_pos

VIT_B_GLOBAL_BLOCKS = (2, 5, 8, 11)
WINDOW_TABLE_ROWS = 2 * 14 - 1


# ---------------------------------------------------------------- the interpolation itself

def test_pos_embed_resized_to_its_own_grid_is_the_identity():
    pos = torch.randn(1, 8, 6, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(resize_pos_embed(pos, (8, 6)), pos, atol=1e-6)


@pytest.mark.parametrize("grid", [(4, 4), (13, 7), (32, 32)])
def test_pos_embed_constant_field_stays_constant_on_any_grid(grid):
    # Bicubic weights sum to one (also with antialiasing), so a constant embedding cannot change.
    pos = torch.full((1, 16, 16, 3), 0.0) + torch.tensor([1.5, -2.0, 0.25])
    out = resize_pos_embed(pos, grid)
    assert out.shape == (1, *grid, 3)
    assert torch.allclose(out, pos[:, :1, :1].expand_as(out), atol=1e-5)


def test_pos_embed_keeps_dtype_and_rejects_a_wrong_rank():
    assert resize_pos_embed(torch.zeros(1, 4, 4, 2, dtype=torch.float16), (2, 2)).dtype == torch.float16
    with pytest.raises(ValueError, match=r"pos_embed must have shape \(1, H, W, C\), got \(4, 4, 2\)"):
        resize_pos_embed(torch.zeros(4, 4, 2), (2, 2))


def test_rel_pos_linear_ramp_stays_the_hand_computed_ramp():
    # Linear, align_corners=False: new row j samples old position (j + 0.5) * L / L' - 0.5, so a
    # table holding its row index in every channel becomes exactly that position (no clamping when shrinking).
    ramp = torch.arange(127, dtype=torch.float32)[:, None].repeat(1, 4)
    out = resize_rel_pos(ramp, 63)
    expected = (torch.arange(63, dtype=torch.float64) + 0.5) * 127 / 63 - 0.5
    assert out.shape == (63, 4)
    assert torch.allclose(out[:, 0].double(), expected, atol=1e-4)
    assert torch.equal(out[:, 0], out[:, 3])


def test_rel_pos_growing_keeps_the_ramp_inside_and_clamps_the_two_ends():
    ramp = torch.arange(127, dtype=torch.float32)[:, None]
    out = resize_rel_pos(ramp, 191)[:, 0].double()
    expected = (torch.arange(191, dtype=torch.float64) + 0.5) * 127 / 191 - 0.5
    assert torch.allclose(out[1:-1], expected[1:-1], atol=1e-4)
    assert (out[0].item(), out[-1].item()) == (0.0, 126.0)  # edge rows hold the old edge values


@pytest.mark.parametrize("old_grid,new_grid", [(64, 32), (64, 48), (32, 64)])
def test_rel_pos_offset_zero_row_is_kept(old_grid, new_grid):
    table = torch.randn(2 * old_grid - 1, 8, generator=torch.Generator().manual_seed(1))
    out = resize_rel_pos(table, 2 * new_grid - 1)
    assert torch.allclose(out[new_grid - 1], table[old_grid - 1], atol=1e-6)


def test_resized_rel_pos_table_gives_the_attention_terms_sam_computes_on_the_new_grid():
    # SAM's attention resizes a table that does not fit its input the same way at run time: a model
    # loaded at 512 attends exactly as the 1024 model does when fed a 32x32 grid.
    table = torch.randn(127, 64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(get_rel_pos(32, 32, resize_rel_pos(table, 63)), get_rel_pos(32, 32, table), atol=1e-6)


def test_fit_leaves_a_matching_state_dict_untouched_and_skips_foreign_widths():
    expected = {POS_EMBED_KEY: torch.zeros(1, 4, 4, 8), "image_encoder.blocks.0.attn.rel_pos_h": torch.zeros(7, 2)}
    same = {k: torch.ones_like(v) for k, v in expected.items()}
    fitted, resized = fit_to_model(same, expected)
    assert resized == [] and all(fitted[k] is same[k] for k in same)
    wider = {POS_EMBED_KEY: torch.ones(1, 8, 8, 16), "image_encoder.blocks.0.attn.rel_pos_h": torch.ones(15, 2)}
    fitted, resized = fit_to_model(wider, expected)
    assert resized == [] and fitted[POS_EMBED_KEY] is wider[POS_EMBED_KEY]


# ---------------------------------------------------------------- vit_t: no weights depend on the size

@pytest.fixture(scope="module")
def vit_t_state():
    torch.manual_seed(0)
    return sam_model_registry["vit_t"](image_size=1024).state_dict()


@pytest.mark.parametrize("size", [48, 272, 512])
def test_vit_t_checkpoint_loads_unchanged_at_any_multiple_of_16(vit_t_state, size):
    model = load_state_dict_strictly(sam_model_registry["vit_t"](image_size=size), vit_t_state, "vit_t.pth", "vit_t")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in vit_t_state.items())
    if size < 512:  # 512's encoder run costs seconds; the grid rule is the same
        with torch.no_grad():
            embedding = model.image_encoder(torch.zeros(1, 3, size, size))
        assert embedding.shape == (1, 256, size // 16, size // 16)


@pytest.mark.parametrize("model_type", ["vit_t", "vit_b"])
@pytest.mark.parametrize("size", [520, 1000, 0, -16, "512", True])
def test_sizes_off_the_16_pixel_grid_are_refused_by_name(model_type, size):
    with pytest.raises(ValueError, match=rf"cannot build {model_type}: image size must be a positive multiple of 16, "
                                         rf"got {size!r}"):
        sam_model_registry[model_type](image_size=size)


def test_train_config_refuses_an_img_size_off_the_grid():
    from fastsam.train.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"config key 'img_size': image size must be a positive multiple of 16, "
                                          r"got 1000"):
        config_from_dict({"img_size": 1000})


# ---------------------------------------------------------------- vit_b: a 1024 checkpoint at 512 and 768

@pytest.fixture(scope="module")
def vit_b_1024(tmp_path_factory):
    """(model, official-layout file) of a seeded vit_b at 1024 with random size-dependent weights."""
    torch.manual_seed(0)
    model = sam_model_registry["vit_b"](image_size=1024)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.image_encoder.named_parameters():
            if name == "pos_embed" or ".rel_pos_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    path = tmp_path_factory.mktemp("vit_b") / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def saved_state(vit_b_1024):
    """The file's tensors exactly as saved."""
    return torch.load(vit_b_1024[1], map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def vit_b_loaded(vit_b_1024):
    """Models built at 512 and 768 from the 1024 file (through the registry's loader)."""
    _, path = vit_b_1024
    return {size: sam_model_registry["vit_b"](checkpoint=path, image_size=size) for size in (512, 768)}


def test_vit_b_loaded_at_its_own_size_is_bit_identical_without_a_resize(vit_b_1024, saved_state, caplog):
    # Reloading into the fixture's own 1024 model (zeroed first) spares building a second vit_b.
    model, path = vit_b_1024
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.zero_()
    with caplog.at_level(logging.INFO, logger="fastsam.checkpoint"):
        load_checkpoint(model, path, "vit_b")
    loaded = model.state_dict()
    assert loaded.keys() == saved_state.keys()
    assert all(torch.equal(loaded[k], saved_state[k]) for k in saved_state)
    assert "resized" not in caplog.text


@pytest.mark.parametrize("size", [512, 768])
def test_vit_b_loaded_at_another_size_resizes_only_the_size_dependent_weights(saved_state, vit_b_loaded, size):
    model = vit_b_loaded[size]
    grid = size // 16
    loaded = model.state_dict()
    assert loaded[POS_EMBED_KEY].shape == (1, grid, grid, 768)
    assert torch.allclose(loaded[POS_EMBED_KEY], resize_pos_embed(saved_state[POS_EMBED_KEY], (grid, grid)))
    changed = {k for k in saved_state if not torch.equal(loaded[k], saved_state[k])}
    rel_pos = {f"image_encoder.blocks.{i}.attn.rel_pos_{axis}" for i in VIT_B_GLOBAL_BLOCKS for axis in "hw"}
    assert changed == {POS_EMBED_KEY} | rel_pos
    for key in rel_pos:
        assert loaded[key].shape == (2 * grid - 1, 64)
    assert loaded["image_encoder.blocks.0.attn.rel_pos_h"].shape == (WINDOW_TABLE_ROWS, 64)
    assert model.prompt_encoder.image_embedding_size == (grid, grid)
    assert model.prompt_encoder.input_image_size == (size, size)


def test_vit_b_resize_is_logged_with_what_changed_from_what_to_what(saved_state, vit_b_loaded, caplog):
    with caplog.at_level(logging.INFO, logger="fastsam.checkpoint"):
        load_state_dict_strictly(vit_b_loaded[512], saved_state, "sam_vit_b.pth", "vit_b")
    assert ("checkpoint sam_vit_b.pth: trained at image size 1024, loaded at 512: resized image_encoder.pos_embed "
            "grid 64x64 -> 32x32 (bicubic); 8 rel-pos tables of global-attention blocks 127 -> 63 rows (linear)"
            ) in caplog.text


def test_vit_b_global_block_at_512_attends_as_the_1024_block_on_a_32x32_grid(vit_b_1024, vit_b_loaded):
    x = torch.randn(1, 32, 32, 768, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = vit_b_1024[0].image_encoder.blocks[2](x)
        got = vit_b_loaded[512].image_encoder.blocks[2](x)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_vit_b_at_512_predicts_masks_of_the_right_shapes(vit_b_loaded):
    from fastsam.predictor import SamPredictor

    predictor = SamPredictor(vit_b_loaded[512])
    predictor.set_image(np.zeros((300, 400, 3), dtype=np.uint8))
    assert predictor.features.shape == (1, 256, 32, 32)
    masks, scores, low_res = predictor.predict(point_coords=np.array([[200.0, 150.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 300, 400) and scores.shape == (3,) and low_res.shape == (3, 128, 128)


def test_vit_b_at_768_embeds_a_48x48_grid_and_decodes_masks_at_that_size(vit_b_loaded):
    # The 12-block encoder at 768 costs about a minute on CPU: run the patch embedding, one windowed and
    # one global block (both kinds of rel-pos table) and the neck, then the prompt encoder and decoder.
    sam = vit_b_loaded[768]
    encoder = sam.image_encoder
    with torch.no_grad():
        x = encoder.patch_embed(torch.zeros(1, 3, 768, 768)) + encoder.pos_embed
        x = encoder.blocks[2](encoder.blocks[0](x))
        embedding = encoder.neck(x.permute(0, 3, 1, 2))
        assert embedding.shape == (1, 256, 48, 48)
        sparse, dense = sam.prompt_encoder(points=(torch.tensor([[[400.0, 300.0]]]), torch.tensor([[1]])),
                                           boxes=None, masks=None)
        low_res, iou = sam.mask_decoder(image_embeddings=embedding, image_pe=sam.prompt_encoder.get_dense_pe(),
                                        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                        multimask_output=True)
        masks = sam.postprocess_masks(low_res, input_size=(576, 768), original_size=(600, 800))
    assert dense.shape == (1, 256, 48, 48)
    assert low_res.shape == (1, 3, 192, 192) and iou.shape == (1, 3)
    assert masks.shape == (1, 3, 600, 800)


# ---------------------------------------------------------------- the trainer takes the 1024 file at another size

def test_trainer_finetunes_a_1024_vit_b_checkpoint_at_img_size_64(vit_b_1024, tmp_path):
    # 64 px keeps the vit_b encoder to one 14x14 window per block: one step costs about a second.
    from fastsam.data.synthetic import generate_synthetic_dataset
    from fastsam.train.config import config_from_dict
    from fastsam.train.trainer import train

    root = generate_synthetic_dataset(tmp_path / "data", num_train=1, num_val=1, size=64, objects=(1, 1), seed=0)
    cfg = config_from_dict(dict(
        output_dir=str(tmp_path / "runs"), train_img_dir=str(root / "train/images"),
        train_mask_dir=str(root / "train/masks"), val_img_dir=str(root / "val/images"),
        val_mask_dir=str(root / "val/masks"), model_type="vit_b", checkpoint=str(vit_b_1024[1]), img_size=64,
        freeze={"image_encoder": True, "prompt_encoder": True}, batch_size=1, num_epochs=1, max_steps_per_epoch=1,
        num_val_overlays=0, seed=0,
    ))
    train(cfg)
    saved = torch.load(cfg.run_dir / "latest_model.pth", map_location="cpu", weights_only=True)
    assert saved["config"]["img_size"] == 64 and saved["model_type"] == "vit_b"
    assert saved["model"][POS_EMBED_KEY].shape == (1, 4, 4, 768)
    assert saved["model"]["image_encoder.blocks.2.attn.rel_pos_h"].shape == (7, 64)
    # The frozen encoder holds the resized 1024 weights.
    expected = resize_pos_embed(vit_b_1024[0].image_encoder.pos_embed.detach(), (4, 4))
    assert torch.allclose(saved["model"][POS_EMBED_KEY], expected)


def test_trainer_custom_iou_head_also_takes_the_1024_file_at_another_size(vit_b_1024):
    from fastsam.train.config import config_from_dict
    from fastsam.train.model_setup import build_student

    cfg = config_from_dict(dict(model_type="vit_b", checkpoint=str(vit_b_1024[1]), img_size=64,
                                iou_head_depth=2, iou_head_hidden_dim=32))
    model = build_student(cfg)
    assert model.image_encoder.pos_embed.shape == (1, 4, 4, 768)
    assert model.mask_decoder.iou_prediction_head.layers[0].out_features == 32


# ---------------------------------------------------------------- export and runtime at another size

def test_export_settings_say_the_weights_were_resized(vit_b_1024):
    from fastsam.export.settings import build_model

    model, settings = build_model(str(vit_b_1024[1]), model_type="vit_b", image_size=512)
    assert model.image_encoder.pos_embed.shape == (1, 32, 32, 768)
    assert settings.sources["image_size"] == "command line, weights resized from 1024"


@pytest.mark.slow
def test_vit_t_checkpoint_exports_at_512_and_the_runtime_predicts_at_that_size(vit_t_state, tmp_path):
    # vit_t, not vit_b: exporting vit_b takes minutes on CPU. The export API with simplification off and
    # one timing run keeps this to the graphs and the parity gate.
    from fastsam.export import manifest
    from fastsam.export.pipeline import ExportOptions, run_export
    from fastsam.export.settings import build_model

    checkpoint = tmp_path / "mobile_sam_random.pth"
    torch.save(vit_t_state, checkpoint)
    out = tmp_path / "vit_t_512"
    sam, settings = build_model(str(checkpoint), model_type="vit_t", image_size=512)
    run_export(sam, ExportOptions(output_dir=out, model_type="vit_t", simplify=False, timing_repeats=1),
               log=lambda line: None)
    written = manifest.read_manifest(out)
    assert (written["model_type"], written["image_size"]) == ("vit_t", 512)
    assert all(entry["ok"] for entry in written["parity"].values())
    fastsam_rt = pytest.importorskip("fastsam_rt")
    predictor = fastsam_rt.Predictor(str(out))
    assert predictor.image_size == 512
    predictor.set_image(np.zeros((300, 400, 3), dtype=np.uint8))
    masks, scores, low_res = predictor.predict(point_coords=np.array([[200.0, 150.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 300, 400) and scores.shape == (3,) and low_res.shape == (3, 128, 128)
