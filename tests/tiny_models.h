#pragma once
// The tiny MSMedCap config (tests/data/tiny_msmedcap_opt.json) with both Q-Formers' stage-1
// text paths and heads, for loss and training tests.

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "test_utils.h"

namespace msmedcap::testing {

inline config::RunConfig tiny_stage1_config() {
  config::RunConfig cfg;
  config::Json j = config::read_json_file(data_path("tiny_msmedcap_opt.json"));
  j["model"]["qformer"]["text_path"] = true;
  j["model"]["sam_qformer"]["text_path"] = true;
  j["model"]["embed_dim"] = 32;
  config::from_json(j, cfg, "", "tiny_msmedcap_opt.json + text paths");
  return cfg;
}

}  // namespace msmedcap::testing
