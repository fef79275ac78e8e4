"""Loaders for public dataset file formats; each returns a dataset of plain-dict records."""

from unipt.data.formats.answer_vocab import AnswerVocab
from unipt.data.formats.gqa import load_gqa
from unipt.data.formats.image_caption_jsonl import load_image_caption_jsonl
from unipt.data.formats.imagefolder import load_imagefolder
from unipt.data.formats.karpathy import load_karpathy
from unipt.data.formats.msrvtt import load_msrvtt
from unipt.data.formats.msvd import load_msvd
from unipt.data.formats.refcoco import load_refcoco
from unipt.data.formats.safe_pickle import safe_load_pickle
from unipt.data.formats.text_table import load_text_csv, load_text_jsonl
from unipt.data.formats.vqa import load_vqa
from unipt.data.formats.vqa_answers import normalize_answer, soft_scores

__all__ = [
    "AnswerVocab",
    "load_gqa",
    "load_image_caption_jsonl",
    "load_imagefolder",
    "load_karpathy",
    "load_msrvtt",
    "load_msvd",
    "load_refcoco",
    "load_text_csv",
    "load_text_jsonl",
    "load_vqa",
    "normalize_answer",
    "safe_load_pickle",
    "soft_scores",
]
