#pragma once
/// The JPEG 2000 and JPEG-LS decoders for DICOM pixel data, driven by msmedcap rather than by GDCM:
/// GDCM's JPEG 2000 codec never destroyed OpenJPEG's decompressor when a codestream was corrupt
/// (found by fuzz_image), so GDCM parses the dataset and its codecs never see these codestreams.
/// OpenJPEG (libopenjp2) and CharLS are called through their C interfaces, and every object they
/// create is destroyed on every path. Both refuse a codestream whose size, component count or
/// precision disagrees with the DICOM header before any pixel memory is allocated. Private to
/// src/data/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace msmedcap::data::detail {

/// What the DICOM header says one frame is.
struct FrameShape {
  int width = 0, height = 0;
  int components = 0;  ///< Samples per Pixel
  int max_bits = 16;   ///< Bits Allocated: no sample may be wider
};

/// One decoded frame: width x height x components samples, interleaved, row-major, as coded
/// (unsigned in [0, 2^precision), or negative for a signed JPEG 2000 component). Colour comes back
/// in the colour space of the data: the decoders undo only the transforms the codestream itself
/// records (JPEG 2000's reversible or irreversible component transform).
struct FrameSamples {
  std::vector<int32_t> samples;
};

/// A JPEG 2000 codestream (transfer syntaxes 1.2.840.10008.1.2.4.90 to .93), or one wrapped in a
/// JP2 file (which DICOM forbids and some writers produced): its contiguous codestream box is
/// decoded. Returns what is wrong, or "". Truncated codestreams are errors (OpenJPEG's strict mode).
std::string decode_jpeg2000(const unsigned char* data, size_t n, const FrameShape& shape, FrameSamples& out);

/// A JPEG-LS codestream (1.2.840.10008.1.2.4.80 lossless, .81 near-lossless). Returns what is
/// wrong, or "".
std::string decode_jpegls(const unsigned char* data, size_t n, const FrameShape& shape, FrameSamples& out);

/// "" when a codestream declaring `width` x `height` x `components` samples of `precision` bits
/// fits `shape`, else why not (shared by both decoders).
std::string check_frame(const FrameShape& shape, int width, int height, int components, int precision);

}  // namespace msmedcap::data::detail
