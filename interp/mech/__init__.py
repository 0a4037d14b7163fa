"""Mechanistic tools on hooked models: token classes, interventions, patching, position-restricted LoRA.

Every function that takes an activation site and a layer takes the site first:
`hook_name(site, layer)`, `patched(model, site, layer, source)`.

    from interp.mech import encode_prompts, load_hooked, patch_layer_aligned, trait_metric
    base, student = load_hooked(base_dir), load_hooked(student_dir, base=base_dir)
    batch = encode_prompts(base.tok, texts)  # prompts rendered by the chat template (or plain text)
    result = patch_layer_aligned(base, student, batch, trait_metric(base.tok, trait), "resid_pre")

(`tests/test_docstring_examples.py` runs every example in these modules' docstrings.)
"""

from interp.mech.attribution import (
    agreement,
    attribute_layer_aligned,
    attribute_layer_class,
    attribute_layer_head,
    attribute_layer_pos,
)
from interp.mech.hook_names import SITES, Site, hook_name
from interp.mech.hooked import HookedModel, load_hooked
from interp.mech.intervene import ZERO, Add, Replace, patched
from interp.mech.metrics import TraitMetric, trait_metric
from interp.mech.patching import (
    patch_head_aligned,
    patch_layer_aligned,
    patch_layer_class,
    patch_layer_head,
    patch_layer_pos,
    run_metric,
)
from interp.mech.positions import (
    CLASSES,
    ENTITY,
    GENERATED,
    HEADER,
    PAD,
    SYSTEM,
    TEMPLATE,
    USER,
    LabelledBatch,
    Positions,
    all_positions,
    by_class,
    by_indices,
    by_substring,
    encode_prompts,
    label_plain,
    label_prompt,
    label_text,
    no_positions,
)
from interp.mech.restrict import evaluate_trait_restricted, restrict_lora
from interp.mech.results import LocalizationResult
from interp.mech.sets import READOUT, SHIFT_SETS, patch_layer_set, patch_sets, shift_set_masks

__all__ = [
    "CLASSES",
    "ENTITY",
    "GENERATED",
    "HEADER",
    "PAD",
    "READOUT",
    "SHIFT_SETS",
    "SITES",
    "SYSTEM",
    "TEMPLATE",
    "USER",
    "ZERO",
    "Add",
    "HookedModel",
    "LabelledBatch",
    "LocalizationResult",
    "Positions",
    "Replace",
    "Site",
    "TraitMetric",
    "agreement",
    "all_positions",
    "attribute_layer_aligned",
    "attribute_layer_class",
    "attribute_layer_head",
    "attribute_layer_pos",
    "by_class",
    "by_indices",
    "by_substring",
    "encode_prompts",
    "evaluate_trait_restricted",
    "hook_name",
    "label_plain",
    "label_prompt",
    "label_text",
    "load_hooked",
    "no_positions",
    "patch_head_aligned",
    "patch_layer_aligned",
    "patch_layer_class",
    "patch_layer_set",
    "patch_layer_head",
    "patch_layer_pos",
    "patch_sets",
    "patched",
    "restrict_lora",
    "run_metric",
    "shift_set_masks",
    "trait_metric",
]
