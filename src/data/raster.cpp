#include "decoders.h"

#include "msmedcap/core/components.h"

#if MSMEDCAP_WITH_OPENCV
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "jpeg.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/data/opencv_image.h"
#endif

namespace msmedcap::data {

#if MSMEDCAP_WITH_OPENCV
namespace {

std::string sniff_format(const std::string& bytes) {
  auto starts = [&](const char* magic, size_t n) {
    return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
  };
  if (starts("\x89PNG", 4)) return "png";
  if (starts("\xFF\xD8\xFF", 3)) return "jpeg";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "tiff";
  if (starts("BM", 2)) return "bmp";
  return "image";
}

/// A PNG's chunks must lie inside the file up to IEND: a file cut short is named here, before
/// libpng would print its own complaint on stderr.
void check_png_chunks(const std::string& bytes, const std::string& name) {
  uint64_t p = 8;
  while (true) {
    MSMEDCAP_CHECK(p + 8 <= bytes.size(), name, ": truncated PNG (the file ends before its IEND chunk)");
    const auto* u = reinterpret_cast<const unsigned char*>(bytes.data() + p);
    const uint64_t length = (uint64_t{u[0]} << 24) | (uint64_t{u[1]} << 16) | (uint64_t{u[2]} << 8) | u[3];
    std::string type = bytes.substr(static_cast<size_t>(p) + 4, 4);
    for (char& c : type) c = std::isalpha(static_cast<unsigned char>(c)) ? c : '?';  // printable in the message
    MSMEDCAP_CHECK(p + 12 + length <= bytes.size(), name, ": truncated PNG (its ", type,
                   " chunk runs past the end of the file)");
    if (type == "IEND") return;
    p += 12 + length;
  }
}

uint32_t be32(const unsigned char* d) {
  return uint32_t{d[0]} << 24 | uint32_t{d[1]} << 16 | uint32_t{d[2]} << 8 | d[3];
}

/// Width and height a PNG, JPEG, BMP or TIFF header declares, read before anything is decoded
/// (a 1 MB file may declare 30000 x 30000 pixels); throws naming the file when the header is
/// cut short or the format is none of these.
std::pair<int64_t, int64_t> raster_dimensions(const std::string& bytes, const std::string& format,
                                              const std::string& name) {
  const auto* d = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  const auto truncated = [&]() -> std::pair<int64_t, int64_t> {
    MSMEDCAP_FAIL(name, ": truncated ", format, " header");
  };
  if (format == "png") {
    if (n < 24 || std::memcmp(d + 12, "IHDR", 4) != 0) return truncated();
    return {be32(d + 16), be32(d + 20)};
  }
  if (format == "bmp") {
    if (n < 26) return truncated();
    const uint32_t dib = d[14] | uint32_t{d[15]} << 8 | uint32_t{d[16]} << 16 | uint32_t{d[17]} << 24;
    if (dib == 12) return {d[18] | d[19] << 8, d[20] | d[21] << 8};  // OS/2 header: 16-bit sizes
    const auto i32 = [&](size_t p) {
      return static_cast<int32_t>(d[p] | uint32_t{d[p + 1]} << 8 | uint32_t{d[p + 2]} << 16 | uint32_t{d[p + 3]} << 24);
    };
    return {std::abs(static_cast<int64_t>(i32(18))),
            std::abs(static_cast<int64_t>(i32(22)))};  // negative height: top-down
  }
  if (format == "jpeg") {
    detail::JpegHeader header;
    const std::string problem = detail::read_jpeg_header(d, n, header);
    if (!problem.empty()) MSMEDCAP_FAIL(name, ": ", problem);
    return {header.width, header.height};
  }
  if (format == "tiff") {
    const bool big = d[0] == 'M';
    const auto u16 = [&](size_t p) { return big ? uint32_t{d[p]} << 8 | d[p + 1] : uint32_t{d[p + 1]} << 8 | d[p]; };
    const auto u32 = [&](size_t p) { return big ? be32(d + p) : (u16(p + 2) << 16 | u16(p)); };
    if (n < 8) return truncated();
    const size_t ifd = u32(4);
    if (ifd + 2 > n) return truncated();
    const size_t entries = u16(ifd);
    if (ifd + 2 + 12 * entries > n) return truncated();
    int64_t width = -1, height = -1;
    for (size_t e = 0; e < entries; ++e) {
      const size_t at = ifd + 2 + 12 * e;
      const uint32_t tag = u16(at), type = u16(at + 2);
      const int64_t value = type == 3 ? u16(at + 8) : type == 4 ? u32(at + 8) : -1;  // SHORT or LONG
      if (tag == 256) width = value;
      if (tag == 257) height = value;
    }
    if (width < 0 || height < 0) MSMEDCAP_FAIL(name, ": TIFF without ImageWidth/ImageLength in its first directory");
    return {width, height};
  }
  MSMEDCAP_FAIL(name, ": not a decodable image (PNG, JPEG, TIFF, BMP or DICOM), or corrupt");
}

/// The first value of a multi-valued DS element ("40\\80" -> 40), or nothing.

}  // namespace

namespace detail {

DecodedImage decode_raster(const std::string& bytes, const std::string& name, const DecodeOptions& options) {
  const std::string format = sniff_format(bytes);
  const auto [width, height] = raster_dimensions(bytes, format, name);
  MSMEDCAP_CHECK(width > 0 && height > 0, name, ": ", format, " header declares ", width, " x ", height, " pixels");
  // width * height itself could overflow (PNG sizes go to 2^32 - 1: found by fuzz_image).
  MSMEDCAP_CHECK(width <= options.max_pixels / height, name, ": ", width, " x ", height,
                 " pixels exceed data.transform.max_image_pixels (", options.max_pixels, ")");
  if (format == "png") check_png_chunks(bytes, name);
  cv::Mat raw;
  try {
    raw = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
                       cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {  // OpenCV's own assertion text names no file: ours does
    MSMEDCAP_FAIL(name, ": OpenCV cannot decode this ", format, " (", e.err.substr(0, 120), ")");
  }
  MSMEDCAP_CHECK(!raw.empty(), name, ": not a decodable image (PNG, JPEG, TIFF, BMP or DICOM), or corrupt");
  // Past imdecode OpenCV's conversions are not expected to throw; if one does, the error names
  // the file (the loader skips a sample on msmedcap::Error alone).
  try {
    DecodedImage out;
    out.format = sniff_format(bytes);
    cv::Mat img = raw;
    switch (img.channels()) {
      case 1:
        break;
      case 2: {
        cv::Mat ch[2];
        cv::split(img, ch);
        img = ch[0];
        break;
      }  // grey + alpha
      case 3:
        cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
        break;
      case 4:
        cv::cvtColor(img, img, cv::COLOR_BGRA2RGB);
        break;
      default:
        MSMEDCAP_FAIL(name, ": ", img.channels(), " channels are not supported");
    }
    cv::Mat f;
    switch (img.depth()) {
      case CV_8U:
        out.bits = 8;
        img.convertTo(f, CV_32F, 1.0 / 255.0);
        break;
      case CV_16U:
        out.bits = 16;
        img.convertTo(f, CV_32F, 1.0 / 65535.0);
        break;
      case CV_32F:
      case CV_64F: {
        // Floating-point TIFF: no fixed range, so min-max.
        out.bits = img.depth() == CV_32F ? 32 : 64;
        // minMaxLoc passes over NaN (every comparison with it is false), so look for it first.
        MSMEDCAP_CHECK(cv::checkRange(img, /*quiet=*/true), name, ": image holds NaN or infinite values");
        double lo = 0, hi = 0;
        cv::minMaxLoc(img.reshape(1), &lo, &hi);
        img.convertTo(f, CV_32F, hi > lo ? 1.0 / (hi - lo) : 0.0, hi > lo ? -lo / (hi - lo) : 0.0);
        break;
      }
      default:
        MSMEDCAP_FAIL(name, ": pixel depth ", img.depth(), " (OpenCV code) is not supported");
    }
    out.pixels = image_from_mat(f);
    return out;
  } catch (const cv::Exception& e) {
    MSMEDCAP_FAIL(name, ": OpenCV failed on this ", format, " (", e.err.substr(0, 120), ")");
  }
}

}  // namespace detail

void write_noise_jpeg(const std::string& path, int64_t size, uint64_t seed) {
  MSMEDCAP_CHECK(size >= 1 && size <= 16384, path, ": noise image size must be within 1..16384, got ", size);
  cv::RNG rng(seed);
  cv::Mat img(static_cast<int>(size), static_cast<int>(size), CV_8UC3);
  rng.fill(img, cv::RNG::UNIFORM, 0, 255);
  cv::GaussianBlur(img, img, cv::Size(0, 0), 3);  // photographic-like entropy, not noise
  std::vector<uint8_t> jpeg;
  MSMEDCAP_CHECK(cv::imencode(".jpg", img, jpeg, {cv::IMWRITE_JPEG_QUALITY, 90}), path, ": JPEG encoding failed");
  core::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
}

#else

DecodedImage detail::decode_raster(const std::string&, const std::string& name, const DecodeOptions&) {
  core::fail_built_without(core::Component::kOpenCv, "decoding " + name + ": PNG, JPEG, TIFF and BMP input");
}

void write_noise_jpeg(const std::string& path, int64_t, uint64_t) {
  core::fail_built_without(core::Component::kOpenCv, "writing the JPEG " + path);
}

#endif

}  // namespace msmedcap::data
