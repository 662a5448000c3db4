#pragma once
// msmedcap (HF) tensor names written as LAVIS / MSMedCap .pth checkpoints name them, for tests
// that make LAVIS-layout files from fixtures (the inverse of io/weight_map's lavis rules, EVA's
// q_bias/v_bias split aside).
#include <regex>
#include <string>
#include <utility>

namespace msmedcap::testing {

inline std::string lavis_name(std::string n) {
  const std::pair<const char*, const char*> rules[] = {
      {"^vision_model\\.embeddings\\.class_embedding$", "visual_encoder.cls_token"},
      {"^vision_model\\.embeddings\\.position_embedding$", "visual_encoder.pos_embed"},
      {"^vision_model\\.embeddings\\.patch_embedding\\.", "visual_encoder.patch_embed.proj."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.layer_norm([12])\\.", "visual_encoder.blocks.$1.norm$2."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.self_attn\\.qkv\\.", "visual_encoder.blocks.$1.attn.qkv."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.self_attn\\.projection\\.", "visual_encoder.blocks.$1.attn.proj."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.mlp\\.", "visual_encoder.blocks.$1.mlp."},
      {"^vision_model\\.post_layernorm\\.", "ln_vision."},
      {"^(sam_)?qformer\\.layernorm\\.", "$1Qformer.bert.embeddings.LayerNorm."},
      {"^qformer\\.", "Qformer.bert."},
      {"^sam_qformer\\.", "sam_Qformer.bert."},
      {"\\.attention\\.attention\\.", ".attention.self."},
      {"\\.crossattention\\.attention\\.", ".crossattention.self."},
      {"^language_projection\\.", "opt_proj."},
      {"^sam_language_projection\\.", "sam_opt_proj."},
      {"^language_model\\.", "opt_model."},
  };
  for (const auto& [from, to] : rules) n = std::regex_replace(n, std::regex(from), to);
  return n;
}

}  // namespace msmedcap::testing
