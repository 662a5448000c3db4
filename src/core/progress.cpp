#include "msmedcap/core/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "msmedcap/core/logging.h"

namespace msmedcap::core {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buf;
}

Progress::Progress(std::string tag, int64_t total, ProgressOptions options)
    : tag_(std::move(tag)), total_(total), options_(std::move(options)) {
  if (options_.out == nullptr) options_.out = &std::cerr;
  interactive_ =
      options_.interactive < 0 ? (options_.out == &std::cerr && isatty(STDERR_FILENO)) : options_.interactive != 0;
  start_ = now();
  last_report_ = start_;
}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {}
}

double Progress::now() const {
  if (options_.clock) return options_.clock();
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string Progress::status() const {
  const double elapsed = now() - start_;
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  char buf[128];
  if (total_ > 0) {
    const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
    std::snprintf(buf, sizeof(buf), "%lld/%lld %.1f %s/s ETA %s", static_cast<long long>(done_),
                  static_cast<long long>(total_), rate, options_.unit.c_str(), format_duration(eta).c_str());
  } else {
    std::snprintf(buf, sizeof(buf), "%lld %.1f %s/s", static_cast<long long>(done_), rate, options_.unit.c_str());
  }
  return buf;
}

void Progress::advance(int64_t n) {
  done_ += n;
  const double t = now();
  // A terminal line is cheap to redraw; a log line is written at most every interval_s.
  const double interval = interactive_ ? 0.1 : options_.interval_s;
  if (t - last_report_ >= interval) {
    last_report_ = t;
    report(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  report(true);
}

void Progress::report(bool final_line) {
  std::ostream& out = *options_.out;
  if (final_line) {
    const double elapsed = now() - start_;
    const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
    char buf[128];
    std::snprintf(buf, sizeof(buf), "done %lld %s in %s (%.1f %s/s)", static_cast<long long>(done_),
                  options_.unit.c_str(), format_duration(elapsed).c_str(), rate, options_.unit.c_str());
    if (interactive_) {
      out << "\r\033[K[" << tag_ << "] " << buf << "\n" << std::flush;
    } else if (options_.out == &std::cerr) {
      log_info(tag_.c_str(), "{}", buf);
    } else {
      out << "[" << tag_ << "] " << buf << "\n";
    }
    return;
  }
  if (interactive_) {
    out << "\r\033[K[" << tag_ << "] " << status() << std::flush;
  } else if (options_.out == &std::cerr) {
    log_info(tag_.c_str(), "{}", status());
  } else {
    out << "[" << tag_ << "] " << status() << "\n";
  }
}

}  // namespace msmedcap::core
