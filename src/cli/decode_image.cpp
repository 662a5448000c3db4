// msmedcap decode-image FILE --output OUT.safetensors [--window CENTER,WIDTH] [--frame K]:
// what the model sees of an image file, before the branch transforms.
#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/io/safetensors.h"

namespace msmedcap::cli {

void register_decode_image(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string file, output, window;
    int frame = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "decode-image", "decode an image or DICOM file to float32 [H, W, C] in [0, 1] (after rescale and window)");
  cmd->add_option("file", o->file, "PNG, JPEG, TIFF, BMP or DICOM file")->required();
  cmd->add_option("--output", o->output, "safetensors to write (tensor `image`)")->required();
  cmd->add_option("--window", o->window, "DICOM VOI window CENTER,WIDTH overriding the file's");
  cmd->add_option("--frame", o->frame, "frame of a multi-frame DICOM (0-based)")->check(CLI::NonNegativeNumber);
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    data::DecodeOptions options;
    if (!o->window.empty()) options.window = data::parse_window(o->window);
    options.frame = o->frame;
    const data::DecodedImage image = data::decode_image(o->file, options);
    const data::Image& px = image.pixels;
    io::Metadata meta = {
        {"format", "pt"}, {"source", o->file}, {"source_format", image.format}, {"bits", std::to_string(image.bits)}};
    if (image.format == "dicom") {
      meta.emplace_back("photometric", image.photometric);
      meta.emplace_back("rescale_slope", std::to_string(image.slope));
      meta.emplace_back("rescale_intercept", std::to_string(image.intercept));
      meta.emplace_back("window_source", image.window_source);
      if (image.window) {
        meta.emplace_back("window_center", std::to_string(image.window->center));
        meta.emplace_back("window_width", std::to_string(image.window->width));
      }
    }
    io::write_safetensors(o->output, {{"image", io::DType::F32, {px.rows(), px.cols(), px.channels()}, px.data()}},
                          meta);
    core::log_info("decode-image", "{}: {} {}x{}x{} ({} bits{}{}) -> {}", o->file, image.format, px.rows(), px.cols(),
                   px.channels(), image.bits, image.window_source.empty() ? "" : ", window from ", image.window_source,
                   o->output);
  });
}

}  // namespace msmedcap::cli
