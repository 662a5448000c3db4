#include "jpeg.h"

#include "codestream.h"

#include <string>

namespace msmedcap::data::detail {

std::string check_frame(const FrameShape& shape, int width, int height, int components, int precision) {
  if (width != shape.width || height != shape.height || components != shape.components)
    return "the frame is " + std::to_string(width) + " x " + std::to_string(height) + " with " +
           std::to_string(components) + " components, the DICOM header says " + std::to_string(shape.width) + " x " +
           std::to_string(shape.height) + " with " + std::to_string(shape.components);
  if (precision < 1 || precision > shape.max_bits || precision > 31)
    return "samples of " + std::to_string(precision) + " bits do not fit " + std::to_string(shape.max_bits) +
           "-bit pixels (Bits Allocated)";
  return "";
}

std::string read_jpeg_header(const unsigned char* d, size_t n, JpegHeader& header) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return "JPEG data does not start with SOI";
  size_t p = 2;
  while (true) {
    while (p < n && d[p] != 0xFF) ++p;  // stray bytes between segments: libjpeg skips them too
    while (p < n && d[p] == 0xFF) ++p;  // fill bytes
    if (p + 2 >= n) return "JPEG header: ends before its frame header (SOF)";
    const unsigned char m = d[p++];
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // standalone markers
    if (m == 0xD8 || m == 0xD9) return "JPEG header: SOI or EOI before the frame header (SOF)";
    if (m == 0xDA) return "JPEG header: a scan (SOS) before any frame header (SOF)";
    const size_t length = static_cast<size_t>(d[p]) << 8 | d[p + 1];
    if (length < 2 || p + length > n) return "JPEG header: a marker segment runs past the data";
    // Frame headers: SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (length < 8) return "JPEG header: frame header (SOF) too short";
      const unsigned char* v = d + p + 2;
      header.precision = v[0];
      header.height = v[1] << 8 | v[2];
      header.width = v[3] << 8 | v[4];
      header.components = v[5];
      header.lossless = m == 0xC3 || m == 0xC7 || m == 0xCB || m == 0xCF;
      if (header.lossless ? header.precision < 2 || header.precision > 16
                          : header.precision != 8 && header.precision != 12)
        return "JPEG header: sample precision " + std::to_string(header.precision) + " is not supported";
      if (header.width == 0 || header.height == 0 || header.components < 1 || header.components > 4)
        return "JPEG header: frame of " + std::to_string(header.width) + " x " + std::to_string(header.height) +
               " with " + std::to_string(header.components) + " components";
      return "";
    }
    p += length;
  }
}

}  // namespace msmedcap::data::detail
