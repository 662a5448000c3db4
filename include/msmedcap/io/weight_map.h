#pragma once
/// The weight map: the ONE place where other checkpoint layouts are renamed to msmedcap's
/// canonical (HuggingFace) names. Formats:
///   hf     canonical names as stored (HF Blip2 / SAM / msmedcap files); nothing changes.
///   hf-lm  an HF causal-LM file whose names may lack the `transformer.` (GPT-2) or `model.`
///          (OPT) prefix; causal-mask and rotary buffers are dropped.
///   lavis  LAVIS / MSMedCap `.pth` names (after scripts/convert_pth.py): visual_encoder ->
///          vision_model (q_bias/v_bias fused into qkv.bias with a zero key bias), ln_vision ->
///          post_layernorm, Qformer.bert -> qformer, sam_Qformer.bert -> sam_qformer,
///          attention.self -> attention.attention, opt_proj -> language_projection,
///          sam_opt_proj -> sam_language_projection, opt_model -> language_model. A file with
///          sam_Qformer and no Qformer is MSMedCap's SAM-branch stage 1, whose heads
///          (vision_proj, text_proj, itm_head, temp) are the SAM branch's (sam_*).
///   samblip MSMedCap's prototype SamBlip: clip_qformer/sam_qformer.Qformer.bert -> qformer /
///          sam_qformer, their query_tokens, clip_proj / sam_proj, opt_model; a lavis load of
///          such a file is refused with a message naming this format.
///   sam    the original segment-anything layout (image_encoder.*) -> HF SamModel names.
///   bert   an HF bert-base-uncased folder as a fresh Q-Former, loaded under "qformer." or
///          "sam_qformer." as LAVIS initialises it: embeddings and layers from BERT (+1 [DEC]
///          row), the text feed-forward copied into intermediate_query / output_query, the
///          cross-attention new (configs/weights/qformer-from-bert.json allows it missing).

#include <string>
#include <vector>

#include "msmedcap/io/tensor_store.h"

namespace msmedcap::io {

/// The formats above.
const std::vector<std::string>& weight_formats();

/// The tensors of `store` under canonical names for `format` (zero-copy except fused tensors).
/// Throws naming the file when a tensor is malformed for its rule (e.g. q_bias without v_bias).
StateDict canonical_tensors(const TensorStore& store, const std::string& format);

/// Canonical-name prefixes that files of `format` may carry although a captioning model has
/// no such parameters (LAVIS stage-1 heads and text path, the temperature); loading ignores
/// them and the report lists them.
std::vector<std::string> optional_prefixes(const std::string& format);

}  // namespace msmedcap::io
