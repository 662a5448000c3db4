#pragma once
// Tiny configs for tests: a model config built from field names, the tiny MSMedCap config
// (tests/data/tiny_msmedcap_opt.json) with both Q-Formers' stage-1 text paths and heads, for
// loss and training tests, and a tiny Q-Former with its text path.

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "test_utils.h"

namespace msmedcap::testing {

/// A model config from its fields by name, as a config file's `model` section writes them
/// ({"vision": {"hidden_size": 32, ...}, "sam_qformer": {...}}); what `fields` leaves out keeps
/// its default, and a misspelt field is an error naming it, as in a config file. Where a test
/// wants one section's values in another (the SAM Q-Former like the CLIP one), it copies the
/// JSON.
inline config::ModelConfig model_config(const config::Json& fields) {
  config::ModelConfig m;
  config::from_json(fields, m, "model", "the test's model config");
  return m;
}

inline config::RunConfig tiny_stage1_config() {
  config::RunConfig cfg;
  config::Json j = config::read_json_file(data_path("tiny_msmedcap_opt.json"));
  j["model"]["qformer"]["text_path"] = true;
  j["model"]["sam_qformer"]["text_path"] = true;
  j["model"]["embed_dim"] = 32;
  config::from_json(j, cfg, "", "tiny_msmedcap_opt.json + text paths");
  return cfg;
}

/// A 3-layer Q-Former with the stage-1 text path (width 32, 4 heads, 5 queries, image width
/// 24, vocabulary 40), dropout as configured by default (0.1).
inline config::QFormerConfig tiny_text_qformer() {
  config::QFormerConfig q;
  q.hidden_size = 32;
  q.intermediate_size = 48;
  q.num_hidden_layers = 3;
  q.num_attention_heads = 4;
  q.cross_attention_frequency = 2;
  q.encoder_hidden_size = 24;
  q.num_query_tokens = 5;
  q.vocab_size = 40;
  q.max_position_embeddings = 16;
  q.text_path = true;
  return q;
}

/// A two-layer decoder of `arch` (opt, llama, gpt2) with a 50-token vocabulary: LLaMA with
/// grouped keys/values and an untied head, the others tied.
inline config::DecoderConfig tiny_decoder(const std::string& arch) {
  config::DecoderConfig d;
  d.arch = arch;
  d.vocab_size = 50;
  d.hidden_size = 32;
  d.num_hidden_layers = 2;
  d.num_attention_heads = 4;
  d.num_key_value_heads = arch == "llama" ? 2 : 0;
  d.intermediate_size = 64;
  d.max_position_embeddings = 64;
  d.tie_word_embeddings = arch != "llama";
  d.layer_norm_eps = 1e-5;
  return d;
}

}  // namespace msmedcap::testing
