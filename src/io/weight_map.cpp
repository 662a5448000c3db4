#include "msmedcap/io/weight_map.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <regex>

#include "msmedcap/core/check.h"

namespace msmedcap::io {

namespace {

struct Rule {
  std::regex pattern;
  std::string replacement;
};

std::string apply(const std::vector<Rule>& rules, std::string name) {
  for (const auto& rule : rules) name = std::regex_replace(name, rule.pattern, rule.replacement);
  return name;
}

const std::vector<Rule>& lavis_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^visual_encoder\\.cls_token$"), "vision_model.embeddings.class_embedding"},
      {std::regex("^visual_encoder\\.pos_embed$"), "vision_model.embeddings.position_embedding"},
      {std::regex("^visual_encoder\\.patch_embed\\.proj\\."), "vision_model.embeddings.patch_embedding."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.norm([12])\\."), "vision_model.encoder.layers.$1.layer_norm$2."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.attn\\.qkv\\."),
       "vision_model.encoder.layers.$1.self_attn.qkv."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.attn\\.proj\\."),
       "vision_model.encoder.layers.$1.self_attn.projection."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.mlp\\."), "vision_model.encoder.layers.$1.mlp."},
      {std::regex("^ln_vision\\."), "vision_model.post_layernorm."},
      {std::regex("^(sam_)?Qformer\\.bert\\.embeddings\\.LayerNorm\\."), "$1qformer.layernorm."},
      {std::regex("^(sam_)?Qformer\\.bert\\.embeddings\\."), "$1qformer.embeddings."},
      {std::regex("^(sam_)?Qformer\\.bert\\."), "$1qformer."},
      {std::regex("^(sam_)?Qformer\\.cls\\."), "$1qformer.cls."},
      {std::regex("\\.attention\\.self\\."), ".attention.attention."},
      {std::regex("\\.crossattention\\.self\\."), ".crossattention.attention."},
      {std::regex("^(opt|t5|llm)_proj\\."), "language_projection."},
      {std::regex("^sam_(opt|t5|llm)_proj\\."), "sam_language_projection."},
      {std::regex("^(opt|t5|llm)_model\\."), "language_model."},
      {std::regex("^vision_proj\\."), "vision_projection."},
      {std::regex("^text_proj\\."), "text_projection."},
      {std::regex("^sam_vision_proj\\."), "sam_vision_projection."},
      {std::regex("^sam_text_proj\\."), "sam_text_projection."},
  };
  return rules;
}

const std::vector<Rule>& sam_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^image_encoder\\."), "vision_encoder."},
      {std::regex("\\.neck\\.0\\."), ".neck.conv1."},
      {std::regex("\\.neck\\.1\\."), ".neck.layer_norm1."},
      {std::regex("\\.neck\\.2\\."), ".neck.conv2."},
      {std::regex("\\.neck\\.3\\."), ".neck.layer_norm2."},
      {std::regex("\\.patch_embed\\.proj\\."), ".patch_embed.projection."},
      {std::regex("\\.blocks\\.(\\d+)\\."), ".layers.$1."},
      {std::regex("\\.norm([12])\\."), ".layer_norm$1."},
  };
  return rules;
}

const std::vector<Rule>& hf_lm_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^(h\\.\\d+\\.|wte\\.|wpe\\.|ln_f\\.)"), "transformer.$1"},
      {std::regex("^decoder\\."), "model.decoder."},
  };
  return rules;
}

/// Buffers some files carry that are not parameters (GPT-2 causal masks, LLaMA rotary
/// frequencies, BERT position ids, SAM pixel normalisation).
bool is_dropped_buffer(const std::string& name) {
  static const std::regex kBuffers(
      "(\\.attn\\.bias|\\.attn\\.masked_bias|rotary_emb\\.inv_freq|embeddings\\.position_ids|"
      "^pixel_mean|^pixel_std)$");
  return std::regex_search(name, kBuffers);
}

/// MSMedCap's prototype `SamBlip` (models/SamBlip.py at 874d28c): two Qformer wrappers holding
/// their BERT and query tokens, clip_proj / sam_proj, opt_model; no encoders (it ran on cached
/// features) and no text path.
const std::vector<Rule>& samblip_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^(clip|sam)_qformer\\.Qformer\\.bert\\.embeddings\\.LayerNorm\\."), "$1_qformer.layernorm."},
      {std::regex("^clip_qformer\\.Qformer\\.bert\\."), "qformer."},
      {std::regex("^sam_qformer\\.Qformer\\.bert\\."), "sam_qformer."},
      {std::regex("^clip_qformer\\.layernorm\\."), "qformer.layernorm."},
      {std::regex("^clip_qformer\\.query_tokens$"), "query_tokens"},
      {std::regex("^sam_qformer\\.query_tokens$"), "sam_query_tokens"},
      {std::regex("\\.attention\\.self\\."), ".attention.attention."},
      {std::regex("\\.crossattention\\.self\\."), ".crossattention.attention."},
      {std::regex("^clip_proj\\."), "language_projection."},
      {std::regex("^sam_proj\\."), "sam_language_projection."},
      {std::regex("^opt_model\\."), "language_model."},
  };
  return rules;
}

bool is_samblip_name(const std::string& name) {
  return name.rfind("clip_qformer.Qformer.", 0) == 0 || name.rfind("sam_qformer.Qformer.", 0) == 0;
}

const std::vector<Rule>& bert_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^bert\\."), ""},
      {std::regex("\\.gamma$"), ".weight"},  // TF-era LayerNorm names in some BERT files
      {std::regex("\\.beta$"), ".bias"},
      {std::regex("^embeddings\\.LayerNorm\\."), "layernorm."},
      {std::regex("\\.attention\\.self\\."), ".attention.attention."},
  };
  return rules;
}

/// BERT tensors a Q-Former has no place for: token types, the pooler, next-sentence
/// prediction, and the MLM decoder (the Q-Former's ITG head is tied to its word embeddings).
bool is_dropped_bert(const std::string& name) {
  static const std::regex kDropped(
      "^(embeddings\\.token_type_embeddings\\.|pooler\\.|cls\\.seq_relationship\\.|cls\\.predictions\\.decoder\\.)");
  return std::regex_search(name, kDropped);
}

/// A Q-Former initialised from BERT as LAVIS does (Blip2Base.init_Qformer, then the copy of
/// every `*_query` parameter from its text counterpart): the word embedding and the MLM bias
/// grow by one row for [DEC] (HF's resize_token_embeddings draws it N(0, 0.02); here from a
/// fixed seed), the text feed-forward also fills intermediate_query / output_query, and the
/// cross-attention layers are absent (new; allow them with load.allow_missing).
StateDict bert_qformer_tensors(const TensorStore& store) {
  StateDict out;
  for (const auto& name : store.names()) {
    if (is_dropped_buffer(name)) continue;
    const std::string canonical = apply(bert_rules(), name);
    if (is_dropped_bert(canonical)) continue;
    at::Tensor t = store.view(name);
    if (canonical == "embeddings.word_embeddings.weight") {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(30522);
      t = at::cat({t, at::empty({1, t.size(1)}, t.options().dtype(at::kFloat)).normal_(0.0, 0.02, gen).to(t.dtype())});
    } else if (canonical == "cls.predictions.bias") {
      t = at::cat({t, at::zeros({1}, t.options())});
    }
    MSMEDCAP_CHECK(out.emplace(canonical, t).second, store.path(), ": tensors map to '", canonical,
                   "' twice under format bert");
    static const std::regex kTextFeedForward("^(encoder\\.layer\\.\\d+\\.)(intermediate|output)\\.");
    std::smatch m;
    if (std::regex_search(canonical, m, kTextFeedForward)) {
      out.emplace(m[1].str() + m[2].str() + "_query." + m.suffix().str(), t);
    }
  }
  return out;
}

}  // namespace

const std::vector<std::string>& weight_formats() {
  static const std::vector<std::string> formats = {"hf", "hf-lm", "lavis", "sam", "bert", "samblip"};
  return formats;
}

StateDict canonical_tensors(const TensorStore& store, const std::string& format) {
  if (format == "bert") return bert_qformer_tensors(store);
  const std::vector<Rule>* rules = nullptr;
  if (format == "lavis") {
    rules = &lavis_rules();
  } else if (format == "sam") {
    rules = &sam_rules();
  } else if (format == "hf-lm") {
    rules = &hf_lm_rules();
  } else if (format == "samblip") {
    rules = &samblip_rules();
  } else {
    MSMEDCAP_CHECK(format == "hf", store.path(), ": unknown weights format '", format,
                   "' (expected hf, hf-lm, lavis, sam, bert or samblip)");
  }
  const auto& names = store.names();
  if (format == "lavis") {
    for (const auto& name : names) {
      MSMEDCAP_CHECK(!is_samblip_name(name), store.path(), ": '", name,
                     "' is MSMedCap's SamBlip prototype layout "
                     "(clip_qformer.Qformer..., sam_qformer.Qformer...), not LAVIS's; load it with format samblip");
    }
  }
  // MSMedCap's SAM-branch stage 1 (its blip2_qformer.py) trains sam_Qformer with heads named
  // without the branch: vision_proj, text_proj, itm_head, temp. In a file with no CLIP
  // Q-Former they are the SAM branch's.
  bool sam_only_stage1 = false;
  if (format == "lavis") {
    bool clip_qformer = false, sam_qformer = false;
    for (const auto& name : names) {
      clip_qformer = clip_qformer || name.rfind("Qformer.", 0) == 0;
      sam_qformer = sam_qformer || name.rfind("sam_Qformer.", 0) == 0;
    }
    sam_only_stage1 = sam_qformer && !clip_qformer;
  }
  StateDict out;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> qv_bias;  // LAVIS EVA q/v biases
  static const std::regex kQvBias("^visual_encoder\\.blocks\\.(\\d+)\\.attn\\.([qv])_bias$");
  static const std::regex kBranchHeads("^(vision_projection\\.|text_projection\\.|itm_head\\.|temp$)");
  for (const auto& name : names) {
    if (rules != nullptr && is_dropped_buffer(name)) continue;
    if (format == "samblip" && name.size() > 10 && name.compare(name.size() - 10, 10, ".cls_token") == 0) continue;
    std::smatch m;
    if (format == "lavis" && std::regex_match(name, m, kQvBias)) {
      auto& slot = qv_bias["vision_model.encoder.layers." + m[1].str() + ".self_attn.qkv.bias"];
      (m[2] == "q" ? slot.first : slot.second) = store.view(name);
      continue;
    }
    std::string canonical = rules == nullptr ? name : apply(*rules, name);
    if (sam_only_stage1 && std::regex_search(canonical, kBranchHeads)) canonical = "sam_" + canonical;
    MSMEDCAP_CHECK(out.emplace(canonical, store.view(name)).second, store.path(), ": tensors map to '", canonical,
                   "' twice under format ", format);
  }
  for (const auto& [name, qv] : qv_bias) {
    MSMEDCAP_CHECK(qv.first.defined() && qv.second.defined(), store.path(), ": ", name,
                   " needs both q_bias and v_bias");
    MSMEDCAP_CHECK(qv.first.sizes() == qv.second.sizes() && qv.first.dim() == 1, store.path(),
                   ": q_bias and v_bias of ", name, " differ in shape");
    // EVA's key has no bias: the fused bias is [q_bias, 0, v_bias].
    out[name] = at::cat({qv.first, at::zeros_like(qv.first), qv.second});
  }
  return out;
}

std::vector<std::string> optional_prefixes(const std::string& format) {
  // A stage-2 Q-Former (no text path) takes BERT's layers and leaves its text parts.
  if (format == "bert") return {"embeddings.", "cls.", "encoder.layer.*.intermediate.", "encoder.layer.*.output."};
  if (format != "lavis") return {};
  // Stage-1 parts a stage-2 / captioning checkpoint may still carry (MSMedCap's
  // transform.ipynb copies them in only to satisfy load_state_dict).
  std::vector<std::string> out = {"temp",
                                  "vision_projection.",
                                  "text_projection.",
                                  "itm_head.",
                                  "sam_vision_projection.",
                                  "sam_text_projection.",
                                  "sam_itm_head.",
                                  "sam_temp"};
  for (const std::string q : {"qformer.", "sam_qformer."}) {
    out.push_back(q + "cls.");
    out.push_back(q + "embeddings.");
    out.push_back(q + "encoder.layer.*.intermediate.");  // the text path's feed-forward
    out.push_back(q + "encoder.layer.*.output.");
  }
  return out;
}

}  // namespace msmedcap::io
