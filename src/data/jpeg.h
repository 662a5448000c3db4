#pragma once
/// JPEG codestreams: the frame header read before anything is decoded (for every JPEG input),
/// and the decoder for JPEG inside DICOM (baseline and extended lossy, lossless process 14).
///
/// The decoder drives GDCM's three builds of IJG libjpeg 6b with the lossless extension (8-,
/// 12- and 16-bit samples; one translation unit each, jpeg_ijg*.cpp) through our own source and
/// error managers. libjpeg leaves an error through longjmp; ours frees the decompressor on every
/// path and treats corrupt-data warnings as errors. GDCM's own JPEG codec asserted on some headers
/// and leaked its decompressor on corrupt or short streams (found by fuzz_image), so GDCM parses
/// the dataset and never sees a JPEG codestream. Private to src/data/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace msmedcap::data::detail {

/// What a JPEG frame header (SOF) declares.
struct JpegHeader {
  int width = 0, height = 0;
  int precision = 0;   ///< bits per sample
  int components = 0;  ///< 1 grey, 3 colour (4 at most)
  bool lossless = false;
};

/// Walks the marker segments from SOI to the first frame header and returns what is wrong, or ""
/// with `header` filled. Bytes between segments are skipped as libjpeg skips them; a segment that
/// runs past the data, a scan before any frame header, or a precision no decoder takes (8 or 12
/// lossy, 2..16 lossless) is an error.
std::string read_jpeg_header(const unsigned char* data, size_t n, JpegHeader& header);

/// Decodes one codestream into `samples` (interleaved, row-major, header.components per pixel,
/// values in [0, 2^precision)). A lossy three-component image coded as YCbCr is converted to RGB
/// (`converted` says so), as the codestream itself declares it (JFIF or Adobe marker, else the
/// component identifiers: libjpeg's rule); lossless samples come back as coded. Returns what is
/// wrong, or "". `header` comes from read_jpeg_header on the same bytes and picks the build.
std::string decode_jpeg(const unsigned char* data, size_t n, const JpegHeader& header, std::vector<uint16_t>& samples,
                        bool& converted);

// One per libjpeg build (jpeg_ijg8.cpp, jpeg_ijg12.cpp, jpeg_ijg16.cpp; the body is jpeg_ijg.inc).
// `samples` holds width x height x components already; the message goes to `error` (200 bytes).
bool decode_jpeg_ijg8(const unsigned char* data, size_t n, const JpegHeader& header, uint16_t* samples, bool* converted,
                      char* error);
bool decode_jpeg_ijg12(const unsigned char* data, size_t n, const JpegHeader& header, uint16_t* samples,
                       bool* converted, char* error);
bool decode_jpeg_ijg16(const unsigned char* data, size_t n, const JpegHeader& header, uint16_t* samples,
                       bool* converted, char* error);

}  // namespace msmedcap::data::detail
