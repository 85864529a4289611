"""Model architecture against the official MobileSAM/SAM: state-dict layout, golden numerics, sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import RECORDED_PROMPTS

from fastsam.build_sam import build_sam, count_parameters, sam_model_registry
from fastsam.utils.transforms import ResizeLongestSide

def _prompt_tensors(golden: dict, image: int, prompt: str):
    """(points, box, mask_input) for the prompt encoder, in the 1024 frame, as the official predictor fed them."""
    prefix = f"img{image}__{prompt}__"
    points = box = mask_input = None
    if prefix + "point_coords_transformed" in golden:
        coords = torch.from_numpy(golden[prefix + "point_coords_transformed"]).float()[None]
        labels = torch.from_numpy(golden[prefix + "point_labels"])[None]
        points = (coords, labels)
    if prefix + "box_transformed" in golden:
        box = torch.from_numpy(golden[prefix + "box_transformed"]).float()[None]
    if prefix + "mask_input_index" in golden:
        index = int(golden[prefix + "mask_input_index"])
        mask_input = torch.from_numpy(golden[f"img{image}__p0_point_fg__mm1__low_res_logits"][index])[None, None]
    return points, box, mask_input


@pytest.fixture(scope="module")
def forward_run(fixture_model, fixture_images, predictor_golden):
    """One Sam.forward over the three golden images (p4_box_point_bg, multimask), capturing the embeddings."""
    transform = ResizeLongestSide(fixture_model.image_encoder.img_size)
    captured = {}
    hook = fixture_model.image_encoder.register_forward_hook(lambda m, i, out: captured.setdefault("emb", out))
    batched = []
    for i, image in enumerate(fixture_images):
        resized = torch.from_numpy(transform.apply_image(image)).permute(2, 0, 1).float()
        points, box, _ = _prompt_tensors(predictor_golden, i, "p4_box_point_bg")
        batched.append(
            {
                "image": resized,
                "original_size": image.shape[:2],
                "point_coords": points[0],
                "point_labels": points[1],
                "boxes": box,
            }
        )
    try:
        outputs = fixture_model(batched, multimask_output=True)
    finally:
        hook.remove()
    return captured["emb"].numpy(), outputs


def test_vit_t_state_dict_equals_official_keys_and_shapes(official_meta):
    model = build_sam("vit_t")
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    official = list(official_meta["state_dict"]["keys_and_shapes"].items())
    assert ours == official
    assert count_parameters(model) == official_meta["state_dict"]["total_parameters"]
    # Non-persistent buffers stay out of checkpoints, as in the official code.
    assert "pixel_mean" not in model.state_dict()
    assert not any(k.endswith("attention_bias_idxs") for k in model.state_dict())


def test_strict_load_reproduces_every_tensor(fixture_checkpoint, fixture_model):
    saved = torch.load(fixture_checkpoint, map_location="cpu", weights_only=True)
    loaded = fixture_model.state_dict()
    assert list(saved) == list(loaded)
    for key, tensor in saved.items():
        assert loaded[key].dtype == tensor.dtype, key
        assert torch.equal(loaded[key], tensor), key
    assert not fixture_model.training


@pytest.mark.slow
def test_image_embeddings_match_official(forward_run, predictor_golden):
    embeddings, _ = forward_run
    full = np.abs(embeddings[1:2] - predictor_golden["img1__embedding"]).max()
    sampled = [
        np.abs(embeddings[i : i + 1, :, ::4, ::4] - predictor_golden[f"img{i}__embedding_s4"]).max() for i in (0, 2)
    ]
    print(f"embedding max abs diff: img1 full {full:.3g}, img0 s4 {sampled[0]:.3g}, img2 s4 {sampled[1]:.3g}")
    assert full <= 1e-4
    assert max(sampled) <= 1e-4


@pytest.mark.slow
def test_sam_forward_matches_official_predictor(forward_run, predictor_golden):
    _, outputs = forward_run
    for i, out in enumerate(outputs):
        prefix = f"img{i}__p4_box_point_bg__mm1__"
        golden_masks = predictor_golden[prefix + "masks"]
        assert out["masks"].dtype == torch.bool
        assert tuple(out["masks"].shape[1:]) == golden_masks.shape
        mismatch = (out["masks"][0].numpy() != golden_masks).mean()
        assert mismatch <= 1e-3, f"image {i}: {mismatch:.2%} of mask pixels differ"
        iou_diff = np.abs(out["iou_predictions"][0].numpy() - predictor_golden[prefix + "iou_predictions"]).max()
        assert iou_diff <= 1e-4, f"image {i}: iou diff {iou_diff}"
        logits = out["low_res_logits"][0].numpy()
        if prefix + "low_res_logits" in predictor_golden:  # image 1 keeps full arrays, the others a sample
            logit_diff = np.abs(logits - predictor_golden[prefix + "low_res_logits"]).max()
        else:
            logit_diff = np.abs(logits[..., ::4, ::4] - predictor_golden[prefix + "low_res_logits_s4"]).max()
        assert logit_diff <= 1e-3, f"image {i}: low-res logit diff {logit_diff}"


def test_decoder_matches_official_on_golden_embedding(fixture_model, predictor_golden):
    """Prompt encoder + mask decoder + postprocess_masks on image 1's official embedding, every prompt."""
    embedding = torch.from_numpy(predictor_golden["img1__embedding"])
    input_size = tuple(int(v) for v in predictor_golden["img1__input_size"])
    original_size = tuple(int(v) for v in predictor_golden["img1__original_size"])
    worst_logit = worst_iou = 0.0
    for prompt in RECORDED_PROMPTS:
        points, box, mask_input = _prompt_tensors(predictor_golden, 1, prompt)
        for multimask in (True, False):
            key = f"img1__{prompt}__mm{int(multimask)}__"
            with torch.no_grad():
                sparse, dense = fixture_model.prompt_encoder(points=points, boxes=box, masks=mask_input)
                low_res, iou = fixture_model.mask_decoder(
                    embedding, fixture_model.prompt_encoder.get_dense_pe(), sparse, dense, multimask
                )
                logits = fixture_model.postprocess_masks(low_res, input_size, original_size)
                masks = logits > fixture_model.mask_threshold
            worst_logit = max(worst_logit, np.abs(low_res[0].numpy() - predictor_golden[key + "low_res_logits"]).max())
            worst_iou = max(worst_iou, np.abs(iou[0].numpy() - predictor_golden[key + "iou_predictions"]).max())
            assert (masks[0].numpy() != predictor_golden[key + "masks"]).mean() <= 1e-3, key
    print(f"decoder max abs diff: low-res logits {worst_logit:.3g}, iou {worst_iou:.3g}")
    assert worst_logit <= 1e-3
    assert worst_iou <= 1e-4


def test_preprocess_normalises_and_pads_bottom_right():
    model = build_sam("vit_t")  # preprocessing uses no learned weights
    image = torch.full((3, 10, 20), 200.0)
    out = model.preprocess(image)
    size = model.image_encoder.img_size
    assert out.shape == (3, size, size)
    expected = (torch.tensor([200.0] * 3) - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor(
        [58.395, 57.12, 57.375]
    )
    assert torch.allclose(out[:, 5, 7], expected)
    assert out[:, 10:, :].abs().max() == 0 and out[:, :, 20:].abs().max() == 0
    with pytest.raises(ValueError, match="at most 1024x1024"):
        model.preprocess(torch.zeros(3, 1025, 10))


def test_sam_forward_rejects_records_without_image():
    model = build_sam("vit_t")
    with pytest.raises(ValueError, match=r"batched_input\[0\] is missing the required key 'image'"):
        model([{"original_size": (4, 4)}], multimask_output=False)


OFFICIAL_PARAMETER_COUNTS_M = {"vit_b": 93.7, "vit_l": 312.3, "vit_h": 641.1}


@pytest.mark.parametrize("model_type", ["vit_b", "vit_l", "vit_h"])
def test_vit_parameter_counts_match_official(model_type):
    # The meta device allocates no memory, so even vit_h (2.5 GB of weights) is instant to count.
    with torch.device("meta"):
        model = sam_model_registry[model_type]()
    total = count_parameters(model)
    print(f"{model_type}: {total:,} parameters")
    assert round(total / 1e6, 1) == OFFICIAL_PARAMETER_COUNTS_M[model_type]


@pytest.mark.parametrize(
    "model_type",
    ["vit_b", pytest.param("vit_l", marks=pytest.mark.slow), pytest.param("vit_h", marks=pytest.mark.slow)],
)
def test_vit_forward_on_small_input(model_type):
    # Real depth and width at a 160 px input (10x10 patches, padded to one 14x14 window).
    torch.manual_seed(0)
    model = sam_model_registry[model_type](image_size=160)
    image = torch.rand(3, 150, 160) * 255
    with torch.no_grad():
        (out,) = model(
            [
                {
                    "image": image,
                    "original_size": (300, 320),
                    "point_coords": torch.tensor([[[40.0, 30.0]]]),
                    "point_labels": torch.tensor([[1]]),
                    "boxes": torch.tensor([[10.0, 10.0, 100.0, 90.0]]),
                }
            ],
            multimask_output=True,
        )
    del model
    assert out["masks"].shape == (1, 3, 300, 320)
    assert out["iou_predictions"].shape == (1, 3)
    assert out["low_res_logits"].shape == (1, 3, 40, 40)
    assert torch.isfinite(out["low_res_logits"]).all()
