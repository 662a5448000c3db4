// JPEG 2000 pixel data through OpenJPEG's C interface. See codestream.h.
#include <openjpeg.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "codestream.h"

namespace msmedcap::data::detail {
namespace {

uint32_t be16(const unsigned char* p) { return uint32_t{p[0]} << 8 | p[1]; }
uint32_t be32(const unsigned char* p) { return be16(p) << 16 | be16(p + 2); }

/// The codestream inside a JP2 file: the first contiguous codestream box ("jp2c") among the
/// top-level boxes. Returns false when there is none or a box runs past the data.
bool jp2_codestream(const unsigned char*& data, size_t& n) {
  size_t p = 0;
  while (p + 8 <= n) {
    uint64_t length = be32(data + p);
    size_t header = 8;
    if (length == 1) {  // the 64-bit length follows the type
      if (p + 16 > n) return false;
      length = uint64_t{be32(data + p + 8)} << 32 | be32(data + p + 12);
      header = 16;
    } else if (length == 0) {  // the box runs to the end
      length = n - p;
    }
    if (length < header || length > n - p) return false;
    if (std::memcmp(data + p + 4, "jp2c", 4) == 0) {
      data += p + header;
      n = static_cast<size_t>(length) - header;
      return true;
    }
    p += static_cast<size_t>(length);
  }
  return false;
}

/// The image and component sizes from the SIZ segment, which must follow SOC; read here so that a
/// codestream disagreeing with the DICOM header is refused before OpenJPEG allocates anything.
std::string read_siz(const unsigned char* d, size_t n, const FrameShape& shape) {
  if (n < 2 + 2 + 38 || be16(d) != 0xFF4F || be16(d + 2) != 0xFF51)
    return "JPEG 2000 data does not start with SOC and SIZ";
  const uint32_t length = be16(d + 4), components = be16(d + 40);
  if (length != 38 + 3 * components || 4 + length > n) return "JPEG 2000 header: malformed SIZ segment";
  const uint32_t x = be32(d + 8), y = be32(d + 12), x0 = be32(d + 16), y0 = be32(d + 20);
  if (x <= x0 || y <= y0) return "JPEG 2000 header: empty image area";
  const uint32_t width = x - x0, height = y - y0;
  if (width > 65535 || height > 65535)
    return "JPEG 2000 header: image of " + std::to_string(width) + " x " + std::to_string(height);
  int precision = 0;
  for (uint32_t c = 0; c < components; ++c) {
    const unsigned char* s = d + 42 + 3 * c;
    const int bits = (s[0] & 0x7F) + 1;
    if (c > 0 && bits != precision) return "JPEG 2000 header: components of different precision";
    precision = bits;
    if (s[1] != 1 || s[2] != 1) return "JPEG 2000 header: subsampled components are not supported";
  }
  const std::string fits =
      check_frame(shape, static_cast<int>(width), static_cast<int>(height), static_cast<int>(components), precision);
  return fits.empty() ? "" : "JPEG 2000 header: " + fits;
}

/// The codestream in memory, read through OpenJPEG's stream callbacks.
struct Source {
  const unsigned char* data;
  size_t size, at;
};

OPJ_SIZE_T read_source(void* buffer, OPJ_SIZE_T count, void* user) {
  auto* s = static_cast<Source*>(user);
  if (s->at >= s->size) return static_cast<OPJ_SIZE_T>(-1);  // the end of the stream
  const size_t n = std::min<size_t>(count, s->size - s->at);
  std::memcpy(buffer, s->data + s->at, n);
  s->at += n;
  return n;
}

OPJ_OFF_T skip_source(OPJ_OFF_T count, void* user) {
  auto* s = static_cast<Source*>(user);
  const OPJ_OFF_T lowest = -static_cast<OPJ_OFF_T>(s->at), highest = static_cast<OPJ_OFF_T>(s->size - s->at);
  const OPJ_OFF_T n = std::clamp(count, lowest, highest);
  if (n == 0 && count != 0) return -1;
  s->at = static_cast<size_t>(static_cast<OPJ_OFF_T>(s->at) + n);
  return n;
}

OPJ_BOOL seek_source(OPJ_OFF_T to, void* user) {
  auto* s = static_cast<Source*>(user);
  if (to < 0 || static_cast<uint64_t>(to) > s->size) return OPJ_FALSE;
  s->at = static_cast<size_t>(to);
  return OPJ_TRUE;
}

/// OpenJPEG's first error message, without its newline; warnings and information are dropped
/// (strict mode turns a truncated codestream, otherwise a warning, into an error).
void keep_error(const char* message, void* user) {
  auto* kept = static_cast<std::string*>(user);
  if (!kept->empty() || message == nullptr) return;
  *kept = message;
  while (!kept->empty() && (kept->back() == '\n' || kept->back() == ' ')) kept->pop_back();
}
void drop_message(const char*, void*) {}

struct CodecDeleter {
  void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct StreamDeleter {
  void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct ImageDeleter {
  void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};

}  // namespace

std::string decode_jpeg2000(const unsigned char* data, size_t n, const FrameShape& shape, FrameSamples& out) {
  static const unsigned char jp2_signature[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
  if (n >= 12 && std::memcmp(data, jp2_signature, 12) == 0 && !jp2_codestream(data, n))
    return "JPEG 2000 data: a JP2 file without a readable codestream box";
  if (std::string problem = read_siz(data, n, shape); !problem.empty()) return problem;

  std::string error;
  std::unique_ptr<opj_codec_t, CodecDeleter> codec(opj_create_decompress(OPJ_CODEC_J2K));
  if (!codec) return "JPEG 2000 data: OpenJPEG could not create a decoder";
  opj_set_error_handler(codec.get(), keep_error, &error);
  opj_set_warning_handler(codec.get(), drop_message, nullptr);
  opj_set_info_handler(codec.get(), drop_message, nullptr);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(codec.get(), &parameters) || !opj_decoder_set_strict_mode(codec.get(), OPJ_TRUE))
    return "JPEG 2000 data: OpenJPEG could not set up its decoder";

  Source source{data, n, 0};
  std::unique_ptr<opj_stream_t, StreamDeleter> stream(opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE));
  if (!stream) return "JPEG 2000 data: OpenJPEG could not create a stream";
  opj_stream_set_user_data(stream.get(), &source, nullptr);
  opj_stream_set_user_data_length(stream.get(), n);
  opj_stream_set_read_function(stream.get(), read_source);
  opj_stream_set_skip_function(stream.get(), skip_source);
  opj_stream_set_seek_function(stream.get(), seek_source);

  opj_image_t* header = nullptr;
  const bool read = opj_read_header(stream.get(), codec.get(), &header);
  std::unique_ptr<opj_image_t, ImageDeleter> image(header);
  if (!read || !image) return "JPEG 2000 data: " + (error.empty() ? "unreadable header" : error);
  if (!opj_decode(codec.get(), stream.get(), image.get()) || !opj_end_decompress(codec.get(), stream.get()))
    return "JPEG 2000 data: " + (error.empty() ? "cannot decode the codestream" : error);

  // What OpenJPEG produced must be what the SIZ segment declared.
  const int components = static_cast<int>(image->numcomps);
  for (int c = 0; c < components; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    if (!comp.data || comp.dx != 1 || comp.dy != 1 || static_cast<int>(comp.w) != shape.width ||
        static_cast<int>(comp.h) != shape.height || comp.prec != image->comps[0].prec)
      return "JPEG 2000 data: the decoded component " + std::to_string(c) + " does not match the SIZ segment";
  }
  if (std::string problem =
          check_frame(shape, shape.width, shape.height, components, static_cast<int>(image->comps[0].prec));
      !problem.empty())
    return "JPEG 2000 data: " + problem;
  const size_t pixels = static_cast<size_t>(shape.width) * shape.height;
  out.samples.resize(pixels * components);
  for (int c = 0; c < components; ++c) {
    const OPJ_INT32* plane = image->comps[c].data;
    for (size_t p = 0; p < pixels; ++p) out.samples[p * components + c] = plane[p];
  }
  return "";
}

}  // namespace msmedcap::data::detail
