"""Datasets: folder/COCO sources, bad-sample handling, geometry, GT prompts, synthetic set, collate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastsam.data.build import load_records
from fastsam.data.dataset import PromptSettings, SamDataset, collate_samples
from fastsam.data.folder import folder_records
from fastsam.data.geometry import preprocess_shape, resize_pad_masks, scale_coords
from fastsam.data.prompts import jitter_box, mask_to_box, sample_points
from fastsam.data.synthetic import generate_synthetic_dataset


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(h, w, value=100):
    return np.full((h, w, 3), value, dtype=np.uint8)


def _mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


def test_mask_to_box_is_inclusive_pixel_extent():
    m = torch.zeros(10, 12, dtype=torch.bool)
    m[2:5, 3:9] = True
    assert mask_to_box(m).tolist() == [3.0, 2.0, 8.0, 4.0]
    with pytest.raises(ValueError, match="empty"):
        mask_to_box(torch.zeros(4, 4, dtype=torch.bool))


def test_box_jitter_bounded_and_reproducible():
    box = torch.tensor([10.0, 20.0, 29.0, 59.0])  # 20 wide, 40 tall
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = jitter_box(box, 0.1, 100, 100, g1)
    assert torch.equal(a, jitter_box(box, 0.1, 100, 100, g2))
    assert not torch.equal(a, box)
    assert (a - box).abs().le(torch.tensor([2.0, 4.0, 2.0, 4.0]) + 1e-5).all()
    assert torch.equal(jitter_box(box, 0.0, 100, 100, g1), box)
    edge = jitter_box(torch.tensor([0.0, 0.0, 99.0, 99.0]), 0.5, 100, 100, g1)
    assert edge.min() >= 0 and edge.max() <= 99 and edge[2] >= edge[0] and edge[3] >= edge[1]


def test_points_fall_inside_and_outside():
    m = torch.zeros(20, 20, dtype=torch.bool)
    m[5:10, 5:15] = True
    coords, labels = sample_points(m, 4, 3, torch.Generator().manual_seed(0))
    assert coords.shape == (7, 2) and labels.tolist() == [1, 1, 1, 1, 0, 0, 0]
    inside = m[coords[:, 1].long(), coords[:, 0].long()]
    assert inside.tolist() == [True] * 4 + [False] * 3


def test_geometry_matches_segment_anything_rounding():
    assert preprocess_shape(480, 640, 1024) == (768, 1024)
    assert preprocess_shape(427, 640, 1024) == (683, 1024)
    out = scale_coords(torch.tensor([[640.0, 427.0]]), (427, 640), 1024)
    assert torch.allclose(out, torch.tensor([[1024.0, 683.0]]))


def test_masks_follow_image_geometry_and_padding():
    m = torch.zeros(1, 50, 100, dtype=torch.bool)
    m[0, 10:30, 60:100] = True  # right part of a wide image
    low = resize_pad_masks(m, 64, 16)  # 100x50 -> 64x32, padded to 64x64, then 16x16
    assert low.shape == (1, 16, 16)
    assert low[0, 8:].sum() == 0  # bottom half is padding
    ys, xs = torch.nonzero(low[0], as_tuple=True)
    assert xs.min() >= 9 and xs.max() == 15 and ys.min() >= 2 and ys.max() <= 7


def test_folder_matching_by_stem(tmp_path):
    img, msk = tmp_path / "images", tmp_path / "masks"
    _png(img / "a.png", _rgb(20, 30))
    _png(img / "b.jpg", _rgb(20, 30))
    _png(img / "c.png", _rgb(20, 30))
    _png(msk / "a_0.png", _mask(20, 30, 0, 5, 0, 5))
    _png(msk / "a_10.png", _mask(20, 30, 5, 9, 0, 5))
    _png(msk / "a_2.png", _mask(20, 30, 10, 15, 0, 5))
    _png(msk / "b.png", _mask(20, 30, 0, 5, 0, 5))
    _png(msk / "c" / "object_0.png", _mask(20, 30, 0, 5, 0, 5))
    _png(msk / "zzz_1.png", _mask(20, 30, 0, 5, 0, 5))
    records, orphans = folder_records(img, msk)
    names = {r.name: [ref.name.split("/")[-1] for ref in r.masks] for r in records}
    assert names == {"a.png": ["a_0.png", "a_2.png", "a_10.png"], "b.jpg": ["b.png"], "c.png": ["object_0.png"]}
    assert orphans == ["zzz_1.png"]


def test_bad_samples_reported_with_file_names(tmp_path):
    img, msk = tmp_path / "images", tmp_path / "masks"
    _png(img / "good.png", _rgb(20, 30))
    _png(img / "wrongsize.png", _rgb(20, 30))
    _png(img / "empty.png", _rgb(20, 30))
    _png(img / "nomask.png", _rgb(20, 30))
    (img / "broken.png").write_bytes(b"not a png")
    _png(msk / "good.png", _mask(20, 30, 0, 5, 0, 5))
    _png(msk / "wrongsize.png", _mask(10, 30, 0, 5, 0, 5))
    _png(msk / "empty.png", np.zeros((20, 30), dtype=np.uint8))
    _png(msk / "broken.png", _mask(20, 30, 0, 5, 0, 5))
    with pytest.raises(ValueError) as info:
        load_records(str(img), str(msk), None, "error", "train")
    text = str(info.value)
    for fragment in ("broken.png", "wrongsize.png", "30x10", "empty.png", "is empty", "nomask.png"):
        assert fragment in text
    kept, problems = load_records(str(img), str(msk), None, "skip", "train")
    assert [r.name for r in kept] == ["good.png"]
    assert len(problems) == 6  # 4 bad files + 2 images left without a usable mask


def test_coco_polygons_and_rle(tmp_path):
    from pycocotools import mask as mask_utils

    _png(tmp_path / "imgs" / "x.png", _rgb(40, 50))
    rle_mask = np.zeros((40, 50), dtype=np.uint8, order="F")
    rle_mask[20:30, 10:40] = 1
    rle = mask_utils.encode(rle_mask)
    rle["counts"] = rle["counts"].decode("ascii")
    data = {
        "images": [{"id": 7, "file_name": "x.png", "height": 40, "width": 50}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 10, 10], "area": 100,
             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
            {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [10, 20, 30, 10], "area": 300,
             "segmentation": rle},
            {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 5, 5], "area": 25,
             "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    records, problems = load_records(str(tmp_path / "imgs"), None, str(ann), "error", "val")
    assert problems == [] and len(records) == 1 and len(records[0].masks) == 2
    poly, rle_loaded = (ref.load() for ref in records[0].masks)
    assert poly[2:9, 2:9].all() and not poly[15:, :].any()
    assert np.array_equal(rle_loaded, rle_mask.astype(bool))


def test_dataset_items_and_collate_with_several_objects(tmp_path):
    root = generate_synthetic_dataset(tmp_path / "syn", num_train=3, num_val=1, size=96, objects=(3, 4), seed=1)
    records, problems = load_records(str(root / "train/images"), str(root / "train/masks"), None, "error", "train")
    assert problems == [] and len(records) == 3
    prompts = PromptSettings(use_box=True, box_jitter=0.1, num_pos_points=2, num_neg_points=1)
    ds = SamDataset(records, img_size=64, prompts=prompts, max_objects=2, train=True, seed=0)
    batch = collate_samples([ds[0], ds[1], ds[2]])
    assert len(batch) == 3
    for item, rec in zip(batch, records):
        n = min(2, len(rec.masks))
        h, w = item["original_size"]
        assert item["image"].shape == (3, *item["input_size"]) and max(item["input_size"]) == 64
        assert item["image"].dtype == torch.float32 and item["image"].max() > 1.5  # 0-255, not normalised
        assert item["gt"].shape == (n, h, w) and item["gt_lowres"].shape == (n, 16, 16)
        assert item["boxes"].shape == (n, 4) and item["point_coords"].shape == (n, 3, 2)
        assert item["boxes"][:, 2:].max() <= 64
    again = ds[0]
    assert torch.equal(again["boxes"], batch[0]["boxes"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["boxes"], batch[0]["boxes"])
    val = SamDataset(records, img_size=64, prompts=prompts, max_objects=2, train=False)
    item = val[0]
    assert item["gt"].shape[0] == len(records[0].masks)  # validation keeps every object
    gt_box = scale_coords(mask_to_box(item["gt"][0]).reshape(2, 2), item["original_size"], 64).reshape(4)
    assert torch.allclose(item["boxes"][0], gt_box)


def test_point_prompt_prob_switches_whole_images_to_single_clicks_inside_the_object(tmp_path):
    root = generate_synthetic_dataset(tmp_path / "syn", num_train=8, num_val=1, size=96, objects=(2, 3), seed=2)
    records, _ = load_records(str(root / "train/images"), str(root / "train/masks"), None, "error", "train")
    clicks = SamDataset(records, img_size=96, prompts=PromptSettings(use_box=True, point_prompt_prob=1.0),
                        max_objects=8, train=True, seed=0)
    for item in (clicks[i] for i in range(len(records))):
        assert item["multimask"] and item["boxes"] is None
        assert item["point_coords"].shape == (item["gt"].shape[0], 1, 2) and bool((item["point_labels"] == 1).all())
        for mask, (x, y) in zip(item["gt"], item["point_coords"][:, 0]):
            assert mask[int(y), int(x)]  # the click lands on the object (image is already 96 px: no rescale)
    mixed = SamDataset(records, img_size=96, prompts=PromptSettings(use_box=True, point_prompt_prob=0.5),
                       max_objects=8, train=True, seed=0)
    kinds = {mixed[i]["multimask"] for i in range(len(records))}
    assert kinds == {True, False}
    val = SamDataset(records, img_size=96, prompts=PromptSettings(use_box=True, point_prompt_prob=1.0),
                     max_objects=8, train=False)
    assert not val[0]["multimask"] and val[0]["boxes"] is not None  # validation always uses the configured prompts


def test_synthetic_set_layout_and_masks(tmp_path):
    root = generate_synthetic_dataset(tmp_path / "s", num_train=2, num_val=1, size=64, seed=5)
    for split in ("train", "val"):
        images = sorted((root / split / "images").glob("*.png"))
        masks = sorted((root / split / "masks").glob("*.png"))
        assert images and len(masks) >= len(images)
        for m in masks:
            arr = np.asarray(Image.open(m))
            assert arr.ndim == 2 and set(np.unique(arr)) <= {0, 255} and (arr > 0).any()
    again = generate_synthetic_dataset(tmp_path / "t", num_train=2, num_val=1, size=64, seed=5)
    first = np.asarray(Image.open(root / "train/images/train_0000.png"))
    assert np.array_equal(first, np.asarray(Image.open(again / "train/images/train_0000.png")))


def test_patterned_style_paints_objects_in_two_colours_and_unknown_styles_fail(tmp_path):
    from fastsam.data.synthetic import make_scene

    for style, colours in (("flat", 1), ("patterned", 2)):
        image, masks = make_scene(np.random.default_rng(3), 128, 128, 1, (0.3, 0.3), style)
        pixels = image[masks[0]].astype(np.float32)
        # Two-colour stripes/checks: pixels split into two clusters far apart; flat ones stay within noise.
        spread = np.linalg.norm(pixels - pixels.mean(0), axis=1)
        assert (np.median(spread) > 30) == (colours == 2), (style, np.median(spread))
    with pytest.raises(ValueError, match="style must be one of"):
        generate_synthetic_dataset(tmp_path / "x", num_train=1, num_val=1, size=64, style="striped")


def _generated_objects(source, split):
    """{stem: (image, [mask of object 0, 1, ...])} read straight from the generator's file names."""
    scenes = {}
    for path in sorted((source / split / "images").glob("*.png")):
        files = {int(m.stem.rsplit("_", 1)[1]): m for m in (source / split / "masks").glob(f"{path.stem}_*.png")}
        masks = [np.asarray(Image.open(files[k])) > 0 for k in range(len(files))]
        scenes[path.stem] = (np.asarray(Image.open(path)), masks)
    return scenes


def _write_three_layouts(scenes, out):
    """Write generated scenes in the three layouts of coco128seg (../shared/data/coco128seg/README.md):
    A pairs/{images,masks}/<stem>_<k>.png, one object per pair; B everything/image/<stem>.png +
    everything/mask/<stem>/object_<k>.png; C coco/<stem>.png + a COCO JSON with compressed-RLE segmentations,
    annotations in object order."""
    from pycocotools import mask as mask_utils

    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "shape"}]}
    for image_id, (stem, (image, masks)) in enumerate(sorted(scenes.items()), start=1):
        _png(out / "everything/image" / f"{stem}.png", image)
        _png(out / "coco" / f"{stem}.png", image)
        coco["images"].append({"id": image_id, "file_name": f"{stem}.png", "height": image.shape[0],
                               "width": image.shape[1]})
        for k, mask in enumerate(masks):
            mask = mask.astype(np.uint8)
            _png(out / "pairs/images" / f"{stem}_{k}.png", image)
            _png(out / "pairs/masks" / f"{stem}_{k}.png", mask * 255)
            _png(out / "everything/mask" / stem / f"object_{k}.png", mask * 255)
            rle = mask_utils.encode(np.asfortranarray(mask))
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                "area": int(mask.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            })
    (out / "coco/_annotations.coco.json").write_text(json.dumps(coco))


def test_generated_set_reads_the_same_in_every_layout(tmp_path):
    # Up to 12 objects per image: object_10 must come after object_2, as annotation 11 after annotation 3.
    source = generate_synthetic_dataset(tmp_path / "gen", num_train=1, num_val=3, size=96, objects=(11, 12),
                                        radius=(0.05, 0.12), seed=2)
    scenes = _generated_objects(source, "val")
    assert max(len(masks) for _, masks in scenes.values()) >= 11
    out = tmp_path / "layouts"
    _write_three_layouts(scenes, out)
    pairs, _ = load_records(str(out / "pairs/images"), str(out / "pairs/masks"), None, "error", "val")
    every, _ = load_records(str(out / "everything/image"), str(out / "everything/mask"), None, "error", "val")
    coco, _ = load_records(str(out / "coco"), None, str(out / "coco/_annotations.coco.json"), "error", "val")
    generated, _ = load_records(str(source / "val/images"), str(source / "val/masks"), None, "error", "val")
    assert len(every) == len(coco) == len(generated) == len(scenes) == 3
    assert len(pairs) == sum(len(masks) for _, masks in scenes.values())
    pair_masks = {r.image_path.stem: r.masks for r in pairs}
    assert all(len(masks) == 1 for masks in pair_masks.values())
    for records in zip(every, coco, generated):
        stem = records[0].image_path.stem
        image, masks = scenes[stem]
        for record in records:
            assert record.image_path.stem == stem
            assert np.array_equal(np.asarray(Image.open(record.image_path)), image)
            assert len(record.masks) == len(masks)
            for k, mask in enumerate(masks):
                assert np.array_equal(record.masks[k].load(), mask), (record.masks[k].name, k)
        for k, mask in enumerate(masks):
            assert np.array_equal(pair_masks[f"{stem}_{k}"][0].load(), mask), (stem, k)
