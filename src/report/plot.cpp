#include "msmedcap/report/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#if MSMEDCAP_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"

namespace msmedcap::report {
std::vector<double> nice_ticks(double lo, double hi, int target) {
  MSMEDCAP_CHECK(std::isfinite(lo) && std::isfinite(hi) && target >= 1, "plot: bad axis range ", lo, "..", hi);
  if (hi <= lo) hi = lo + (lo == 0 ? 1.0 : std::abs(lo) * 0.1);
  const double raw = (hi - lo) / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

#if MSMEDCAP_WITH_OPENCV

namespace {

// Matplotlib's "tab10" colours, BGR.
const cv::Scalar kColours[] = {{180, 119, 31}, {14, 127, 255},  {44, 160, 44},   {40, 39, 214},  {189, 103, 148},
                               {75, 86, 140},  {194, 119, 227}, {127, 127, 127}, {34, 189, 188}, {207, 190, 23}};
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

std::string tick_label(double v, double step) {
  char buf[32];
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.1e", v);
  } else {
    const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(buf, sizeof(buf), "%.*f", std::clamp(decimals, 0, 6), v);
  }
  return buf;
}

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale, int align_x = 0, int align_y = 0,
          const cv::Scalar& colour = {40, 40, 40}) {
  int base = 0;
  const cv::Size size = cv::getTextSize(s, kFont, scale, 1, &base);
  // align: -1 left/top, 0 centre, 1 right/bottom of `at`.
  at.x -= align_x == 0 ? size.width / 2 : align_x > 0 ? size.width : 0;
  at.y += align_y == 0 ? size.height / 2 : align_y < 0 ? size.height : 0;
  cv::putText(img, s, at, kFont, scale, colour, 1, cv::LINE_AA);
}

}  // namespace

cv::Mat render_line_chart(const std::vector<Series>& series, const ChartOptions& o) {
  MSMEDCAP_CHECK(o.width >= 200 && o.height >= 150, "plot: the chart must be at least 200 x 150 pixels");
  auto fy = [&](double y) { return o.log_y ? std::log10(y) : y; };
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!o.log_y || y > 0); };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    MSMEDCAP_CHECK(s.x.size() == s.y.size(), "plot: series '", s.name, "' has ", s.x.size(), " x and ", s.y.size(),
                   " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, fy(s.y[i]));
      y1 = std::max(y1, fy(s.y[i]));
    }
  }
  MSMEDCAP_CHECK(std::isfinite(x0), "plot: no series has a point to draw", o.title.empty() ? "" : " (" + o.title + ")");
  const auto xt = nice_ticks(x0, x1), yt = nice_ticks(y0, y1);
  x0 = std::min(x0, xt.front());
  x1 = std::max(x1, xt.back());
  y0 = std::min(y0, yt.front());
  y1 = std::max(y1, yt.back());
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;

  cv::Mat img(o.height, o.width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 70, right = 20, top = o.title.empty() ? 20 : 40, bottom = 55;
  const cv::Rect area(left, top, o.width - left - right, o.height - top - bottom);
  auto px = [&](double x) { return area.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * area.width)); };
  auto py = [&](double y) {
    return area.y + area.height - static_cast<int>(std::lround((y - y0) / (y1 - y0) * area.height));
  };
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (const double t : yt) {
    cv::line(img, {area.x, py(t)}, {area.x + area.width, py(t)}, {232, 232, 232}, 1);
    text(img, o.log_y ? tick_label(std::pow(10.0, t), std::pow(10.0, t)) : tick_label(t, ystep), {area.x - 6, py(t)},
         0.4, 1);
  }
  for (const double t : xt) {
    cv::line(img, {px(t), area.y}, {px(t), area.y + area.height}, {232, 232, 232}, 1);
    text(img, tick_label(t, xstep), {px(t), area.y + area.height + 8}, 0.4, 0, -1);
  }
  cv::rectangle(img, area, {90, 90, 90}, 1);
  if (!o.title.empty()) text(img, o.title, {o.width / 2, 18}, 0.55);
  if (!o.x_label.empty()) text(img, o.x_label, {area.x + area.width / 2, o.height - 14}, 0.45);
  if (!o.y_label.empty()) {
    // Rotated label: draw into a strip and turn it.
    cv::Mat strip(22, area.height, CV_8UC3, cv::Scalar(255, 255, 255));
    text(strip, o.y_label + (o.log_y ? " (log)" : ""), {area.height / 2, 11}, 0.45);
    cv::Mat turned;
    cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
    turned.copyTo(img(cv::Rect(4, area.y, turned.cols, turned.rows)));
  }
  std::vector<std::pair<std::string, cv::Scalar>> legend;
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const cv::Scalar colour = kColours[k % (sizeof(kColours) / sizeof(kColours[0]))];
    std::vector<cv::Point> pts;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (usable(s.x[i], s.y[i])) pts.emplace_back(px(s.x[i]), py(fy(s.y[i])));
    if (pts.empty()) continue;
    cv::polylines(img, pts, false, colour, 2, cv::LINE_AA);
    if (s.markers || pts.size() == 1)
      for (const auto& p : pts) cv::circle(img, p, 3, colour, cv::FILLED, cv::LINE_AA);
    if (!s.name.empty()) legend.emplace_back(s.name, colour);
  }
  if (!legend.empty()) {
    int wide = 0;
    for (const auto& [name, c] : legend) wide = std::max(wide, cv::getTextSize(name, kFont, 0.42, 1, nullptr).width);
    const cv::Rect box(area.x + area.width - wide - 44, area.y + 8, wide + 36,
                       8 + 18 * static_cast<int>(legend.size()));
    cv::rectangle(img, box, {255, 255, 255}, cv::FILLED);
    cv::rectangle(img, box, {200, 200, 200}, 1);
    for (size_t k = 0; k < legend.size(); ++k) {
      const int y = box.y + 13 + 18 * static_cast<int>(k);
      cv::line(img, {box.x + 6, y}, {box.x + 24, y}, legend[k].second, 2, cv::LINE_AA);
      text(img, legend[k].first, {box.x + 30, y}, 0.42, -1);
    }
  }
  return img;
}

void write_line_chart(const std::string& path, const std::vector<Series>& series, const ChartOptions& options) {
  const cv::Mat img = render_line_chart(series, options);
  std::vector<uint8_t> png;
  MSMEDCAP_CHECK(cv::imencode(".png", img, png), path, ": PNG encoding failed");
  core::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
}

#else

void write_line_chart(const std::string& path, const std::vector<Series>&, const ChartOptions&) {
  core::fail_built_without(core::Component::kOpenCv, "drawing the chart " + path);
}

#endif  // MSMEDCAP_WITH_OPENCV

}  // namespace msmedcap::report
