// The config loader: the first line is a `--set a.b=v` override, the rest a JSON config. Bad
// input must end in msmedcap::Error (a message naming the key), never a crash or another
// exception type escaping.
#include <cstdint>
#include <string>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto newline = text.find('\n');
  const std::string assignment = text.substr(0, newline);
  const std::string body = newline == std::string::npos ? std::string("{}") : text.substr(newline + 1);
  auto json = msmedcap::config::Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return 0;
  try {
    msmedcap::config::RunConfig cfg;
    msmedcap::config::from_json(json, cfg, "", "fuzz.json");
    msmedcap::config::apply_override(json, assignment);
    msmedcap::config::RunConfig again;
    msmedcap::config::from_json(json, again, "", "--set");
    again.validate();
    (void)msmedcap::config::to_json(again).dump();
  } catch (const msmedcap::Error&) {
  }
  return 0;
}
