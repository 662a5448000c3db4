#pragma once
/// Line charts as PNG files, drawn with OpenCV (no plotting library in the dependencies): loss
/// curves and metrics over steps for run reports. Torch-free. Without OpenCV (component opencv)
/// write_line_chart fails with "built without opencv" and render_line_chart is not built.

#include <string>
#include <vector>

namespace cv {
class Mat;
}

namespace msmedcap::report {

/// One line: points (x[i], y[i]) joined in order; non-finite points are left out.
struct Series {
  std::string name;
  std::vector<double> x, y;
  /// Also mark each point (for sparse series such as validations).
  bool markers = false;
};

struct ChartOptions {
  std::string title, x_label, y_label;
  int width = 760, height = 440;
  /// Logarithmic y axis (values <= 0 are left out).
  bool log_y = false;
};

/// The chart as a BGR image: axes with rounded ticks, one colour per series, a legend.
/// Throws when no series has a drawable point.
cv::Mat render_line_chart(const std::vector<Series>& series, const ChartOptions& options);

/// render_line_chart() written atomically as PNG to `path`.
void write_line_chart(const std::string& path, const std::vector<Series>& series, const ChartOptions& options);

/// Tick positions covering [lo, hi]: about `target` values at 1, 2 or 5 times a power of ten.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace msmedcap::report
