#pragma once
/// Image decoding: PNG, JPEG, TIFF, BMP (8 or 16 bit, grey or colour) through OpenCV (component
/// opencv, src/data/raster.cpp), and DICOM (component dicom, src/data/dicom.cpp) through GDCM
/// (native pixel data) and our own drivers (JPEG through GDCM's libjpeg builds, src/data/jpeg.h;
/// RLE; JPEG-LS through CharLS; JPEG 2000 through OpenJPEG) with the modality rescale
/// (slope/intercept) and the VOI window. Every decoded image is float32 in [0, 1], RGB order.
/// Torch- and OpenCV-free: the transforms turn these into tensors. A build without a component
/// fails on its formats with "built without ..." (core/components.h).

#include <optional>
#include <string>

#include "msmedcap/config/budgets.h"
#include "msmedcap/data/image.h"

namespace msmedcap::data {

/// A VOI window: centre and width in modality units (after rescale), as DICOM defines them.
struct Window {
  double center = 0;
  double width = 0;
};

/// Parses "CENTER,WIDTH" (e.g. "40,400"); throws naming `what` on a malformed value or width < 1.
Window parse_window(const std::string& text, const std::string& what = "--window");

struct DecodeOptions {
  /// Overrides the window of a grey DICOM image; otherwise the file's first window, or the
  /// min-max of the rescaled pixels when the file has none.
  std::optional<Window> window;
  /// Frame of a multi-frame DICOM (0-based).
  int frame = 0;
  /// Budgets, checked before anything is decoded: the pixels a header may declare (width x
  /// height, per frame) and the file's size, in bytes (config/budgets.h).
  int64_t max_pixels = config::kDefaultMaxImagePixels;
  int64_t max_bytes = config::kDefaultMaxImageMb << 20;
};

/// A decoded image and how it was made.
struct DecodedImage {
  /// One channel (grey) or three (RGB), values in [0, 1].
  Image pixels;
  /// "png", "jpeg", "tiff", "bmp", "dicom" or "image" (another OpenCV format).
  std::string format;
  /// Bits per sample of the source (8, 16, ...).
  int bits = 8;
  /// DICOM only: the modality rescale applied and the window used.
  double slope = 1, intercept = 0;
  std::optional<Window> window;
  /// DICOM only: "file", "override", "minmax" or "" (colour or not DICOM).
  std::string window_source;
  std::string photometric;
};

/// True when `bytes` start like a DICOM Part 10 file ("DICM" at offset 128).
bool is_dicom(const std::string& bytes);

/// Decodes `path`. Throws msmedcap::Error naming the file when it is missing, not a regular file
/// (a FIFO, a device: refused before it is opened), over the budgets, empty, corrupt or in an
/// unsupported layout.
DecodedImage decode_image(const std::string& path, const DecodeOptions& options = {});

/// Decodes bytes already in memory; `name` appears in errors.
DecodedImage decode_image_bytes(const std::string& bytes, const std::string& name, const DecodeOptions& options = {});

/// Writes a `size` x `size` RGB JPEG (quality 90) of blurred uniform noise made from `seed`: an
/// image with a photograph's entropy, the loader benchmark's input. Written atomically; OpenCV.
void write_noise_jpeg(const std::string& path, int64_t size, uint64_t seed);

/// Applies the DICOM linear VOI function (PS3.3 C.11.2.1.2.1) to one rescaled value, giving [0, 1].
double apply_window(double value, const Window& window);

}  // namespace msmedcap::data
