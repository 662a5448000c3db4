#include "msmedcap/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

#include "msmedcap/core/check.h"

namespace msmedcap::core {

spdlog::level::level_enum parse_log_level(const std::string& name) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"error", spdlog::level::err},   {"off", spdlog::level::off}};
  for (const auto& [key, level] : kLevels) {
    if (name == key) return level;
  }
  MSMEDCAP_FAIL("log level: unknown value '", name, "' (expected trace, debug, info, warn, error or off)");
}

spdlog::logger& logger() {
  static std::once_flag once;
  static std::shared_ptr<spdlog::logger> instance;
  std::call_once(once, [] {
    instance = spdlog::stderr_color_mt("msmedcap");
    instance->set_pattern("%H:%M:%S %^%L%$ %v");
    instance->set_level(spdlog::level::info);
  });
  return *instance;
}

void init_logging(const std::string& level) { logger().set_level(parse_log_level(level)); }

}  // namespace msmedcap::core
