#pragma once
/// Logging on stderr through spdlog. Messages carry a `[tag]` naming the subsystem
/// (`[train] step 120 loss 2.31`), and the level is chosen with --log-level.

#include <spdlog/spdlog.h>

#include <string>

namespace msmedcap::core {

/// Parses "trace|debug|info|warn|error|off" (throws msmedcap::Error naming the value otherwise).
spdlog::level::level_enum parse_log_level(const std::string& name);

/// Installs msmedcap's stderr logger at `level` (idempotent; later calls change the level).
void init_logging(const std::string& level);

/// The process-wide logger (created on first use at level "info").
spdlog::logger& logger();

/// Logs `[tag] message` at info level.
template <class... Args>
void log_info(const char* tag, fmt::format_string<Args...> format, Args&&... args) {
  logger().info("[{}] {}", tag, fmt::format(format, std::forward<Args>(args)...));
}
/// Logs `[tag] message` at warn level.
template <class... Args>
void log_warn(const char* tag, fmt::format_string<Args...> format, Args&&... args) {
  logger().warn("[{}] {}", tag, fmt::format(format, std::forward<Args>(args)...));
}
/// Logs `[tag] message` at debug level.
template <class... Args>
void log_debug(const char* tag, fmt::format_string<Args...> format, Args&&... args) {
  logger().debug("[{}] {}", tag, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace msmedcap::core
