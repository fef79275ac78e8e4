"""Tiny datasets written in the real public file formats, with something learnable in them.

Every writer lays files out exactly as the real download does (file names, JSON / CSV / pickle
structure, COCO image names, frame folders) and returns the ``data.options`` a run config passes to
the matching loader. Images are small coloured shapes drawn with PIL, so captions, answers, labels
and boxes really depend on the pixels.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
    "cyan": (30, 200, 210),
    "black": (15, 15, 15),
}
NAMES = list(COLORS)
SHAPES = ("square", "circle")
BACKGROUND = (235, 235, 235)


def draw_shapes(path: Path, shapes: list[tuple[str, str, list[float]]], size: tuple[int, int] = (48, 40)) -> Path:
    """Save an image (JPEG/PNG by suffix) with ``(colour, shape, [x, y, w, h])`` shapes on a light background."""
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    for color, shape, (x, y, w, h) in shapes:
        corners = [x, y, x + w - 1, y + h - 1]
        if shape == "circle":
            draw.ellipse(corners, fill=COLORS[color])
        else:
            draw.rectangle(corners, fill=COLORS[color])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)
    return path


def centred(color: str, shape: str, size: tuple[int, int] = (48, 40), scale: float = 0.6) -> list[tuple]:
    w, h = size
    side = int(min(w, h) * scale)
    return [(color, shape, [(w - side) // 2, (h - side) // 2, side, side])]


def _json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------- Karpathy
def write_karpathy(root: Path, splits: dict[str, int] | None = None) -> dict[str, Any]:
    """``dataset_flickr30k.json`` + ``images/*.jpg``: one coloured shape per image, two captions each."""
    splits = splits or {"train": 8, "val": 4, "test": 4}
    images, imgid, sentid = [], 0, 0
    for split, count in splits.items():
        for _ in range(count):
            color, shape = NAMES[imgid % len(NAMES)], SHAPES[(imgid // len(NAMES)) % 2]
            filename = f"{1000092795 + imgid}.jpg"
            draw_shapes(root / "images" / filename, centred(color, shape))
            raws = [f"A {color} {shape} on a white background.", f"a small {color} {shape}"]
            sentences = [{"tokens": r.lower().strip(".").split(), "raw": r, "imgid": imgid, "sentid": sentid + j}
                         for j, r in enumerate(raws)]
            images.append({"sentids": [s["sentid"] for s in sentences], "imgid": imgid, "sentences": sentences,
                           "split": split, "filename": filename})
            imgid, sentid = imgid + 1, sentid + len(raws)
    path = _json(root / "dataset_flickr30k.json", {"images": images, "dataset": "flickr30k"})
    return {"path": str(path), "image_root": str(root / "images")}


# ------------------------------------------------------------------------------------------- MSR-VTT
def write_msrvtt(root: Path, train_videos: int = 8, test_videos: int = 4, frame_counts: tuple[int, ...] = (2, 3, 5)
                 ) -> dict[str, Any]:
    """CLIP4Clip's MSR-VTT layout: ``MSRVTT_data.json``, ``MSRVTT_train.9k.csv``,
    ``MSRVTT_JSFUSION_test.csv`` and ``frames/<video_id>/<n>.jpg`` (a shape sliding across frames).

    Videos have different frame counts (``frame_counts`` cycled), so sampling and padding both happen.
    """
    videos, sentences, train_ids, test_rows = [], [], [], []
    size = (40, 40)
    for v in range(train_videos + test_videos):
        vid = f"video{v}"
        split = "train" if v < train_videos else "test"
        color, shape = NAMES[v % len(NAMES)], SHAPES[v % 2]
        frames = frame_counts[v % len(frame_counts)]
        for f in range(frames):
            x = 2 + f * 4
            draw_shapes(root / "frames" / vid / f"{f + 1:05d}.jpg", [(color, shape, [x, 10, 20, 20])], size)
        videos.append({"category": v % 20, "url": f"https://www.youtube.com/watch?v={vid}", "video_id": vid,
                       "start time": 0.0, "end time": 10.0, "split": split, "id": v})
        captions = [f"a {color} {shape} moves to the right", f"a {shape} that is {color} slides"]
        for j, caption in enumerate(captions):
            sentences.append({"caption": caption, "video_id": vid, "sen_id": 2 * v + j})
        if split == "train":
            train_ids.append([vid])
        else:
            test_rows.append([f"ret{v}", f"msr{v}", vid, captions[0]])
    _json(root / "MSRVTT_data.json", {"info": {"year": 2016}, "videos": videos, "sentences": sentences})
    _csv(root / "MSRVTT_train.9k.csv", ["video_id"], train_ids)
    _csv(root / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"], test_rows)
    return {"root": str(root), "frames_root": str(root / "frames")}


# ------------------------------------------------------------------------------------------- VQA v2
def _human_answers(answer: str, other: str) -> list[dict[str, Any]]:
    given = [answer] * 8 + [other] * 2
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(given)]


def write_vqa(root: Path, coco_root: Path, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """``v2_OpenEnded_mscoco_{subtype}_questions.json`` + ``v2_mscoco_{subtype}_annotations.json`` in
    ``root`` and COCO images ``coco_root/{subtype}/COCO_{subtype}_{id:012d}.jpg`` (the real COCO tree)."""
    counts = counts or {"train2014": 8, "val2014": 4}
    image_id, qid = 1, 1
    for subtype, count in counts.items():
        questions, annotations = [], []
        for _ in range(count):
            color, shape = NAMES[(image_id - 1) % 4], SHAPES[(image_id - 1) // 4 % 2]
            name = f"COCO_{subtype}_{image_id:012d}.jpg"
            draw_shapes(coco_root / subtype / name, centred(color, shape))
            for text, answer, other, kind in (
                ("What color is the shape?", color, f"dark {color}", "other"),
                (f"Is the shape {color}?", "yes", "no", "yes/no"),
            ):
                questions.append({"image_id": image_id, "question": text, "question_id": qid})
                annotations.append({"question_type": text.split()[0].lower(), "multiple_choice_answer": answer,
                                    "answers": _human_answers(answer, other), "image_id": image_id,
                                    "answer_type": kind, "question_id": qid})
                qid += 1
            image_id += 1
        common = {"info": {"version": "2.0"}, "license": {}, "data_subtype": subtype}
        _json(root / f"v2_OpenEnded_mscoco_{subtype}_questions.json",
              {**common, "task_type": "Open-Ended", "data_type": "mscoco", "questions": questions})
        _json(root / f"v2_mscoco_{subtype}_annotations.json",
              {**common, "data_type": "mscoco", "annotations": annotations})
    return {"root": str(root), "image_root": str(coco_root),
            "image_pattern": "{subtype}/COCO_{subtype}_{image_id:012d}.jpg"}


# ------------------------------------------------------------------------------------------- GQA
def write_gqa(root: Path, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """``questions/{split}_balanced_questions.json`` (keyed by question id) + ``images/<imageId>.jpg``."""
    counts = counts or {"train": 8, "testdev": 4}
    n = 0
    for split, count in counts.items():
        questions = {}
        for _ in range(count):
            color, shape = NAMES[n % 4], SHAPES[n // 4 % 2]
            image_id = f"n{161313 + n}"
            draw_shapes(root / "images" / f"{image_id}.jpg", centred(color, shape))
            for j, (text, answer, full) in enumerate((
                ("What color is the object?", color, f"The object is {color}."),
                ("Which shape is this?", shape, f"This is a {shape}."),
            )):
                questions[f"{20000000 + 10 * n + j}"] = {
                    "semantic": [{"operation": "select", "dependencies": [], "argument": "object"}],
                    "entailed": [], "equivalent": [], "question": text, "imageId": image_id,
                    "isBalanced": True, "groups": {"global": None, "local": "10c-object_color"},
                    "answer": answer, "semanticStr": "select: object", "annotations": {},
                    "types": {"detailed": "objColor", "semantic": "attr", "structural": "query"},
                    "fullAnswer": full,
                }
            n += 1
        _json(root / "questions" / f"{split}_balanced_questions.json", questions)
    return {"root": str(root), "image_root": str(root / "images")}


# ------------------------------------------------------------------------------------------- RefCOCO
def write_refcoco(root: Path, coco_train: Path, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """REFER's ``refcoco/refs(unc).p`` (a pickled list of plain dicts, protocol 2 like the original) +
    ``refcoco/instances.json`` (COCO), images ``coco_train/COCO_train2014_{id:012d}.jpg``.

    Every image holds two objects at different places; each is referred to by its colour.
    """
    counts = counts or {"train": 6, "val": 2, "testA": 2}
    size = (64, 48)
    refs, images, annotations = [], [], []
    image_id, ann_id, ref_id, sent_id = 1, 1, 0, 0
    for split, count in counts.items():
        for _ in range(count):
            n = image_id - 1
            a, b = NAMES[n % 4], NAMES[(n + 1) % 4]
            boxes = {a: [4.0 + 3 * n, 6.0, 20.0, 18.0], b: [36.0 - 2 * n, 22.0, 24.0, 20.0]}
            file_name = f"COCO_train2014_{image_id:012d}.jpg"
            draw_shapes(coco_train / file_name, [(c, "square", box) for c, box in boxes.items()], size)
            images.append({"license": 1, "file_name": file_name, "coco_url": "", "height": size[1],
                           "width": size[0], "date_captured": "", "flickr_url": "", "id": image_id})
            for color, box in boxes.items():
                annotations.append({"segmentation": [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2],
                                                      box[1] + box[3]]], "area": box[2] * box[3], "iscrowd": 0,
                                    "image_id": image_id, "bbox": box, "category_id": 1, "id": ann_id})
                raws = [f"the {color} square", f"{color.upper()} block"]
                sentences = [{"tokens": r.lower().split(), "raw": r, "sent_id": sent_id + j, "sent": r.lower()}
                             for j, r in enumerate(raws)]
                refs.append({"sent_ids": [s["sent_id"] for s in sentences], "file_name": file_name[:-4] + "_0.jpg",
                             "ann_id": ann_id, "ref_id": ref_id, "image_id": image_id, "split": split,
                             "sentences": sentences, "category_id": 1})
                ann_id, ref_id, sent_id = ann_id + 1, ref_id + 1, sent_id + len(raws)
            image_id += 1
    folder = root / "refcoco"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    _json(folder / "instances.json", {"info": {}, "licenses": [], "images": images, "annotations": annotations,
                                      "categories": [{"supercategory": "shape", "id": 1, "name": "square"}]})
    return {"root": str(root), "image_root": str(coco_train)}


def write_mdetr_refcoco(root: Path, coco_train: Path, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """MDETR's ``finetune_refcoco_{split}.json``: one COCO ``images`` entry per expression (with its
    ``caption`` and ``original_img_id``) and that expression's box in ``annotations``; same scenes as
    :func:`write_refcoco`."""
    counts = counts or {"train": 4, "val": 2, "testA": 2}
    size = (64, 48)
    image_id, expression_id = 1, 0
    for split, count in counts.items():
        images, annotations = [], []
        for _ in range(count):
            n = image_id - 1
            a, b = NAMES[n % 4], NAMES[(n + 1) % 4]
            boxes = {a: [4.0 + 3 * n, 6.0, 20.0, 18.0], b: [36.0 - 2 * n, 22.0, 24.0, 20.0]}
            file_name = f"COCO_train2014_{image_id:012d}.jpg"
            draw_shapes(coco_train / file_name, [(c, "square", box) for c, box in boxes.items()], size)
            for color, box in boxes.items():
                for caption in (f"the {color} square", f"{color} block"):
                    images.append({"file_name": file_name, "height": size[1], "width": size[0], "id": expression_id,
                                   "original_img_id": image_id, "caption": caption, "dataset_name": "refcoco",
                                   "tokens_negative": [[0, len(caption)]], "tokens_positive_eval": [[[4, 7]]]})
                    annotations.append({"area": box[2] * box[3], "iscrowd": 0, "image_id": expression_id,
                                        "category_id": 1, "id": expression_id, "bbox": box,
                                        "tokens_positive": [[4, len(caption)]]})
                    expression_id += 1
            image_id += 1
        _json(root / f"finetune_refcoco_{split}.json",
              {"images": images, "annotations": annotations, "categories": [{"supercategory": "shape", "id": 1,
                                                                             "name": "square"}]})
    return {"root": str(root), "image_root": str(coco_train)}


# ------------------------------------------------------------------------------------------- classification
POSITIVE = ("a great and moving film", "wonderful acting, loved it", "a brilliant delight", "funny and smart",
            "an excellent story", "beautiful and warm", "i loved every minute", "a superb cast")
NEGATIVE = ("a boring and dull film", "terrible acting, hated it", "an awful mess", "painfully bad and slow",
            "a dreadful story", "ugly and cold", "i hated every minute", "a weak cast")


def write_text_csv(root: Path, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """GLUE-style ``train.csv`` / ``validation.csv`` / ``test.csv`` with ``text,label`` columns (label names)."""
    counts = counts or {"train": 8, "validation": 4, "test": 4}
    offset = 0
    for split, count in counts.items():
        rows = []
        for k in range(count // 2):
            i = (offset + k) % len(POSITIVE)
            rows += [[POSITIVE[i], "positive"], [NEGATIVE[i], "negative"]]
        offset += count // 2
        _csv(root / f"{split}.csv", ["text", "label"], rows)
    return {"root": str(root)}


def write_imagefolder(root: Path, counts: dict[str, int] | None = None,
                      classes: tuple[str, ...] = ("blue", "red")) -> dict[str, Any]:
    """``root/<split>/<class>/<n>.png``: one colour per class, shapes and sizes vary."""
    counts = counts or {"train": 8, "val": 4}
    for split, count in counts.items():
        for k in range(count):
            name = classes[k % len(classes)]
            draw_shapes(root / split / name / f"{k:03d}.png",
                        centred(name, SHAPES[(k // len(classes)) % 2], scale=0.4 + 0.1 * (k % 4)))
    return {"root": str(root)}


def write_karpathy_coco(root: Path, splits: dict[str, int] | None = None) -> dict[str, Any]:
    """``dataset_coco.json`` (Karpathy's COCO split, with ``filepath`` and ``restval``) + ``images/<filepath>/``."""
    splits = splits or {"train": 4, "restval": 2, "val": 2, "test": 5}
    images = []
    for imgid, split in enumerate(s for s, n in splits.items() for _ in range(n)):
        folder = "val2014" if split in ("val", "test", "restval") else "train2014"
        filename = f"COCO_{folder}_{imgid + 1:012d}.jpg"
        color, shape = NAMES[imgid % len(NAMES)], SHAPES[imgid % 2]
        draw_shapes(root / "images" / folder / filename, centred(color, shape))
        raws = [f"A {color} {shape}.", f"a {shape} in {color}"]
        images.append({"filepath": folder, "sentids": [2 * imgid, 2 * imgid + 1], "filename": filename,
                       "imgid": imgid, "split": split, "cocoid": imgid + 1,
                       "sentences": [{"tokens": r.lower().strip(".").split(), "raw": r, "imgid": imgid,
                                      "sentid": 2 * imgid + j} for j, r in enumerate(raws)]})
    path = _json(root / "dataset_coco.json", {"images": images, "dataset": "coco"})
    return {"path": str(path), "image_root": str(root / "images")}
