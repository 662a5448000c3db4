// JPEG-LS pixel data through CharLS's C interface. See codestream.h.
#include <charls/charls.h>

#include <memory>
#include <string>

#include "codestream.h"

namespace msmedcap::data::detail {
namespace {

struct DecoderDeleter {
  void operator()(charls_jpegls_decoder* d) const { charls_jpegls_decoder_destroy(d); }
};

std::string failed(charls_jpegls_errc code) { return std::string("JPEG-LS data: ") + charls_get_error_message(code); }

}  // namespace

std::string decode_jpegls(const unsigned char* data, size_t n, const FrameShape& shape, FrameSamples& out) {
  // The codestream must end in EOI (then at most the fragment's one pad byte, which CharLS is not
  // shown). CharLS 2.4.1 (Debian 12) stops reading a scan at the next marker, but where the data
  // ends without one its bit reader runs on past the end: a truncated or desynchronised stream
  // then costs about 16 s (an int32 bit count wrapping round) before the error. Ending at a marker
  // keeps every read inside the data.
  if (n >= 3 && data[n - 1] == 0 && data[n - 3] == 0xFF && data[n - 2] == 0xD9) --n;
  if (n < 4 || data[n - 2] != 0xFF || data[n - 1] != 0xD9)
    return "JPEG-LS data: the codestream does not end with EOI (truncated?)";
  std::unique_ptr<charls_jpegls_decoder, DecoderDeleter> decoder(charls_jpegls_decoder_create());
  if (!decoder) return "JPEG-LS data: CharLS could not create a decoder";
  charls_jpegls_errc code = charls_jpegls_decoder_set_source_buffer(decoder.get(), data, n);
  if (code == charls::jpegls_errc::success) code = charls_jpegls_decoder_read_header(decoder.get());
  charls_frame_info info{};
  if (code == charls::jpegls_errc::success) code = charls_jpegls_decoder_get_frame_info(decoder.get(), &info);
  charls_interleave_mode interleave{};
  if (code == charls::jpegls_errc::success)
    code = charls_jpegls_decoder_get_interleave_mode(decoder.get(), &interleave);
  if (code != charls::jpegls_errc::success) return failed(code);
  // The header is checked against the DICOM header before the frame is allocated.
  const std::string problem = check_frame(shape, static_cast<int>(info.width), static_cast<int>(info.height),
                                          info.component_count, info.bits_per_sample);
  if (!problem.empty()) return "JPEG-LS data: " + problem;

  size_t bytes = 0;
  code = charls_jpegls_decoder_get_destination_size(decoder.get(), 0, &bytes);
  if (code != charls::jpegls_errc::success) return failed(code);
  const size_t pixels = static_cast<size_t>(info.width) * info.height,
               components = static_cast<size_t>(info.component_count);
  const size_t sample_bytes = info.bits_per_sample <= 8 ? 1 : 2;
  if (bytes != pixels * components * sample_bytes) return "JPEG-LS data: unexpected decoded size";
  std::vector<unsigned char> buffer(bytes);
  code = charls_jpegls_decoder_decode_to_buffer(decoder.get(), buffer.data(), buffer.size(), 0);
  if (code != charls::jpegls_errc::success) return failed(code);

  // Without interleaving CharLS writes one plane per component; else pixel by pixel.
  const bool planar = interleave == charls::interleave_mode::none && components > 1;
  out.samples.resize(pixels * components);
  for (size_t p = 0; p < pixels; ++p) {
    for (size_t c = 0; c < components; ++c) {
      const size_t at = planar ? c * pixels + p : p * components + c;
      out.samples[p * components + c] =
          sample_bytes == 1 ? buffer[at] : static_cast<int32_t>(buffer[2 * at] | buffer[2 * at + 1] << 8);
    }
  }
  return "";
}

}  // namespace msmedcap::data::detail
