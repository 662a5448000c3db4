// msmedcap plot --out F.png --y KEY... [--val] [NAME=]RUN...: line charts of training runs'
// metrics.jsonl (losses, learning rate, validation scores) as PNG.
#include "commands.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/report/summary.h"

namespace msmedcap::cli {

void register_plot(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string out, title, x_label = "step", y_label;
    std::vector<std::string> keys = {"loss"}, runs;
    bool validation = false, log_y = false;
    int width = 760, height = 440;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("plot", "line charts (PNG) of runs' metrics.jsonl: losses, validation scores");
  cmd->add_option("runs", o->runs, "run folders or metrics.jsonl files, each optionally NAME=PATH")->required();
  cmd->add_option("--out", o->out, "PNG file to write")->required();
  cmd->add_option("--y", o->keys, "metric keys to draw (repeatable; default loss), e.g. lm, itc, CIDEr");
  cmd->add_flag("--val", o->validation,
                "draw the validation lines' values (\"val\": {...}) instead of the training lines'");
  cmd->add_option("--title", o->title, "chart title");
  cmd->add_option("--y-label", o->y_label, "y axis label (default: the key)");
  cmd->add_flag("--log-y", o->log_y, "logarithmic y axis");
  cmd->add_option("--width", o->width, "pixels")->check(CLI::Range(200, 4000));
  cmd->add_option("--height", o->height, "pixels")->check(CLI::Range(150, 4000));
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    std::vector<report::Series> series;
    for (const auto& arg : o->runs) {
      const auto eq = arg.find('=');
      const std::string name = eq == std::string::npos ? arg : arg.substr(0, eq);
      const std::string path = eq == std::string::npos ? arg : arg.substr(eq + 1);
      for (const auto& key : o->keys) {
        const std::string label = o->keys.size() > 1 ? (o->runs.size() > 1 ? name + " " + key : key) : name;
        auto s = report::metrics_series(path, key, o->validation, label);
        if (s.x.empty()) core::log_warn("plot", "{}: no {}{} values", path, o->validation ? "validation " : "", key);
        series.push_back(std::move(s));
      }
    }
    report::ChartOptions chart;
    chart.title = o->title;
    chart.x_label = o->x_label;
    chart.y_label = o->y_label.empty() ? (o->keys.size() == 1 ? o->keys[0] : std::string("value")) : o->y_label;
    chart.log_y = o->log_y;
    chart.width = o->width;
    chart.height = o->height;
    report::write_line_chart(o->out, series, chart);
    core::log_info("plot", "{}: {} series", o->out, series.size());
  });
}

}  // namespace msmedcap::cli
