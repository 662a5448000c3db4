#pragma once
/// Progress display for long loops: on a terminal a single redrawn line with done/total, rate
/// and ETA; otherwise a periodic log line, so CI logs and files stay readable.

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace msmedcap::core {

/// How a Progress reports. Defaults: stderr, terminal detected with isatty, a line every 10 s.
struct ProgressOptions {
  /// Where the display goes; nullptr = std::cerr.
  std::ostream* out = nullptr;
  /// Redraw one line in place (terminal) instead of printing periodic lines; -1 = detect.
  int interactive = -1;
  /// Seconds between lines when not interactive.
  double interval_s = 10.0;
  /// Unit shown after the rate ("it", "img", "tok").
  std::string unit = "it";
  /// Clock in seconds (tests inject a fake one); empty = steady_clock.
  std::function<double()> clock;
};

/// Counts work done in a loop and reports count/total, rate and ETA.
class Progress {
 public:
  /// tag: the `[tag]` of the lines; total: expected count (0 = unknown).
  Progress(std::string tag, int64_t total, ProgressOptions options = {});
  ~Progress();
  /// Adds `n` finished items and reports when due.
  void advance(int64_t n = 1);
  /// Reports the final line (count, elapsed time, mean rate); called by the destructor too.
  void finish();
  /// Formats the status text "done/total rate unit/s ETA mm:ss" (no tag, no newline).
  std::string status() const;
  int64_t done() const { return done_; }

 private:
  double now() const;
  void report(bool final_line);

  std::string tag_;
  int64_t total_;
  ProgressOptions options_;
  bool interactive_;
  int64_t done_ = 0;
  double start_;
  double last_report_;
  bool finished_ = false;
};

/// Formats seconds as "mm:ss" or "h:mm:ss".
std::string format_duration(double seconds);

}  // namespace msmedcap::core
