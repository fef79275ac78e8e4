"""CLIP-ViL: the single-stream encoder of the paper's VQA / GQA experiments, UniPT on it, and its weights.

* :class:`CLIPViLBackbone` (``encoder.py``): 12-layer BERT over ``[text; CLIP grid]``, 13 joint hidden states.
* :class:`CLIPViLUniPT` (``adapted.py``): the ``clipvil`` side network replacing the final states, frozen pooler.
* :class:`CLIPViLForQuestionAnswering` (``model.py``): + ``logit_fc``; ``from_released`` reads released files.
* ``weights.py`` (key mapping), ``answers.py`` (answer-table surgery), ``visual.py`` (CLIP grid / feature
  files), ``preprocess.py`` (records -> inputs), ``loader.py`` (``clipvil:<checkpoint>`` backbones).
"""

from unipt.models.clipvil.adapted import CLIPViLUniPT
from unipt.models.clipvil.answers import answer_head_surgery, convert_answer, load_answer_table
from unipt.models.clipvil.config import CLIPViLConfig
from unipt.models.clipvil.encoder import CLIPViLBackbone, CLIPViLOutput
from unipt.models.clipvil.loader import build_backbone, load_clipvil_backbone
from unipt.models.clipvil.model import CLIPViLForQuestionAnswering, LoadReport
from unipt.models.clipvil.weights import read_state_dict, side_key_table, split_checkpoint, to_released

__all__ = [
    "CLIPViLBackbone",
    "CLIPViLConfig",
    "CLIPViLForQuestionAnswering",
    "CLIPViLOutput",
    "CLIPViLUniPT",
    "LoadReport",
    "answer_head_surgery",
    "build_backbone",
    "convert_answer",
    "load_answer_table",
    "load_clipvil_backbone",
    "read_state_dict",
    "side_key_table",
    "split_checkpoint",
    "to_released",
]
