#include "decoders.h"

#include "msmedcap/core/components.h"

#if MSMEDCAP_WITH_DICOM
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <gdcmDataSet.h>
#include <gdcmImage.h>
#include <gdcmImageHelper.h>
#include <gdcmImageReader.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include "codestream.h"
#include "jpeg.h"
#include "msmedcap/core/check.h"
#endif

// DICOM Part 10 input: a structural walk of the dataset first (budgets, malformed lengths),
// then GDCM for the dataset and native pixel data, and our own drivers for every compressed
// syntax (JPEG through GDCM's libjpeg builds, RLE, JPEG-LS through CharLS, JPEG 2000 through
// OpenJPEG), the modality rescale and the VOI window.
namespace msmedcap::data {

#if MSMEDCAP_WITH_DICOM

// The libjpeg build whose sample width holds the precision (jpeg.h): lossy data is 8 or 12 bits,
// lossless 2..16.
std::string detail::decode_jpeg(const unsigned char* data, size_t n, const JpegHeader& header,
                                std::vector<uint16_t>& samples, bool& converted) {
  samples.assign(static_cast<size_t>(header.width) * header.height * header.components, 0);
  char error[200] = {0};
  const bool ok = header.precision <= 8    ? decode_jpeg_ijg8(data, n, header, samples.data(), &converted, error)
                  : header.precision <= 12 ? decode_jpeg_ijg12(data, n, header, samples.data(), &converted, error)
                                           : decode_jpeg_ijg16(data, n, header, samples.data(), &converted, error);
  if (ok) return "";
  samples.clear();
  return std::string("JPEG data: ") + error;
}

namespace {

std::optional<double> first_ds(const gdcm::DataSet& ds, uint16_t group, uint16_t element) {
  const gdcm::Tag tag(group, element);
  if (!ds.FindDataElement(tag)) return std::nullopt;
  const gdcm::ByteValue* bv = ds.GetDataElement(tag).GetByteValue();
  if (bv == nullptr || bv->GetLength() == 0) return std::nullopt;
  std::string text(bv->GetPointer(), bv->GetLength());
  text = text.substr(0, text.find('\\'));
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

template <class T>
void widen(const char* src, size_t n, int bits_stored, bool is_signed, double* dst) {
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    int64_t x = static_cast<int64_t>(v);
    if (is_signed && bits_stored > 0 && bits_stored < static_cast<int>(8 * sizeof(T))) {
      const int shift = 64 - bits_stored;  // sign-extend from the stored bits
      x = static_cast<int64_t>(static_cast<uint64_t>(x) << shift) >> shift;
    } else if (!is_signed && bits_stored > 0 && bits_stored < static_cast<int>(8 * sizeof(T))) {
      x &= (int64_t{1} << bits_stored) - 1;  // high bits may hold overlays in old files
    }
    dst[i] = static_cast<double>(x);
  }
}

/// Walks the DICOM Part 10 structure (file meta, then every element, sequence and item with
/// its lengths) and returns what is wrong, or "". Debian's GDCM aborts on some truncated files
/// (assertions are compiled in), so nothing reaches it before this check passes.
class DicomWalker {
 public:
  explicit DicomWalker(const std::string& b) : b_(b) {}

  /// What is wrong with the file's structure or its pixel description, or "". `max_pixels`
  /// bounds Rows x Columns (per frame).
  std::string check(int64_t max_pixels) {
    if (b_.size() < 132 || std::memcmp(b_.data() + 128, "DICM", 4) != 0)
      return "not a DICOM Part 10 file (no DICM marker at byte 128)";
    size_t p = 132;
    std::string& ts = transfer_syntax_;
    while (p + 4 <= b_.size() && u16(p, false) == 0x0002) {
      Element e;
      if (!read_element(p, true, false, e)) return error_;
      if (e.length == kUndefined) return at(p, "file meta element with undefined length");
      if (e.element == 0x0010) ts = std::string(b_.data() + e.value, e.length);
      p = e.value + e.length;
    }
    while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) ts.pop_back();
    if (ts.empty()) return "no transfer syntax in the file meta (0002,0010)";
    if (ts == "1.2.840.10008.1.2.1.99") return "deflated transfer syntax is not supported";
    explicit_ = ts != "1.2.840.10008.1.2";
    big_ = ts == "1.2.840.10008.1.2.2";
    if (!walk(p, b_.size(), 0, false)) return error_;
    if (!pixel_data_) return "no pixel data (7FE0,0010)";
    // GDCM asserts that a Recognition Code (retired; ACR-NEMA files had it) names ACR-NEMA.
    if (recognition_.second > 0) {
      const std::string code(b_.data() + recognition_.first, recognition_.second);
      if (code.rfind("ACR-NEMA", 0) != 0 && code.rfind("ACRNEMA", 0) != 0 && code.rfind("MIPS 2.0", 0) != 0)
        return "Recognition Code (0008,0010) '" + code.substr(0, 24) + "' is not an ACR-NEMA one";
    }
    // Attributes Debian's GDCM asserts on instead of reporting.
    const auto bits = image_attr(0x0100);
    if (!bits || bits->second != 2) return "no Bits Allocated (0028,0100)";
    const uint16_t allocated = u16(bits->first, big_);
    if (allocated != 8 && allocated != 16 && allocated != 32)
      return std::to_string(allocated) + "-bit pixels are not supported (8, 16 or 32 bits allocated)";
    if (image_attr(0x0009) && !image_attr(0x0008))
      return "Frame Increment Pointer (0028,0009) without Number of Frames";
    // GDCM asserts when a palette image lacks its lookup tables; palettes are not supported anyway.
    const std::string photometric = text_attr(0x0004);
    if (photometric.rfind("PALETTE", 0) == 0) return "PALETTE COLOR images are not supported";
    return check_pixel_description(allocated, max_pixels);
  }

  /// After check(): the transfer syntax UID, and the encapsulated pixel data's items (the basic
  /// offset table first, then the fragments) as value offset and length; empty for native data.
  const std::string& transfer_syntax() const { return transfer_syntax_; }
  const std::vector<std::pair<size_t, uint32_t>>& pixel_items() const { return pixel_items_; }

 private:
  static constexpr uint32_t kUndefined = 0xFFFFFFFFu;
  struct Element {
    uint16_t group = 0, element = 0;
    char vr[2] = {0, 0};
    uint32_t length = 0;
    size_t value = 0;  // offset of the value
  };

  uint16_t u16(size_t p, bool big) const {
    const auto* d = reinterpret_cast<const unsigned char*>(b_.data()) + p;
    return big ? static_cast<uint16_t>(d[0] << 8 | d[1]) : static_cast<uint16_t>(d[1] << 8 | d[0]);
  }
  uint32_t u32(size_t p, bool big) const {
    return big ? (uint32_t{u16(p, true)} << 16 | u16(p + 2, true))
               : (uint32_t{u16(p + 2, false)} << 16 | u16(p, false));
  }
  bool fail(size_t p, const std::string& what) {
    error_ = at(p, what);
    return false;
  }
  static std::string at(size_t p, const std::string& what) { return what + " at byte " + std::to_string(p); }

  bool read_element(size_t p, bool explicit_vr, bool big, Element& e) {
    if (p + 8 > b_.size()) return fail(p, "truncated element header");
    e.group = u16(p, big);
    e.element = u16(p + 2, big);
    if (e.group == 0xFFFE || !explicit_vr) {
      e.length = u32(p + 4, big);
      e.value = p + 8;
    } else {
      e.vr[0] = b_[p + 4];
      e.vr[1] = b_[p + 5];
      static const std::string kVrs =
          "AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV";
      bool known = false;
      for (size_t k = 0; k + 1 < kVrs.size() && !known; k += 3) known = kVrs[k] == e.vr[0] && kVrs[k + 1] == e.vr[1];
      if (!known) return fail(p, "invalid VR in element (" + hex(e.group) + "," + hex(e.element) + ")");
      static const char* kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UR", "UT", "UN", "SV", "UV"};
      bool long_form = false;
      for (const char* v : kLong) long_form |= (e.vr[0] == v[0] && e.vr[1] == v[1]);
      if (long_form) {
        if (p + 12 > b_.size()) return fail(p, "truncated element header");
        e.length = u32(p + 8, big);
        e.value = p + 12;
      } else {
        e.length = u16(p + 6, big);
        e.value = p + 8;
      }
    }
    if (e.length != kUndefined && e.value + e.length > b_.size())
      return fail(p, "element (" + hex(e.group) + "," + hex(e.element) + ") runs past the end of the file");
    return true;
  }

  static std::string hex(uint16_t v) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%04X", v);
    return buf;
  }

  /// The elements GDCM's image reader reads through its typed attributes (gdcm::Attribute), which
  /// assert, rather than fail, when the element's VR is not the dictionary's or a binary value
  /// has another length (a Rows element with VR CS aborted the process: found by fuzz_image).
  /// Overlay (60xx) and curve (50xx) groups repeat over even groups up to xx = 1E.
  bool check_typed(size_t p, const Element& e) {
    struct Typed {
      uint16_t group, element;
      const char* vr;
    };
    static const Typed kTyped[] = {
        {0x0008, 0x0010, "SH"}, {0x0008, 0x0100, "SH"}, {0x0008, 0x0104, "LO"}, {0x0018, 0x0050, "DS"},
        {0x0018, 0x0088, "DS"}, {0x0018, 0x1063, "DS"}, {0x0018, 0x602C, "FD"}, {0x0018, 0x602E, "FD"},
        {0x0020, 0x0030, "DS"}, {0x0020, 0x0032, "DS"}, {0x0020, 0x0035, "DS"}, {0x0020, 0x0037, "DS"},
        {0x0028, 0x0002, "US"}, {0x0028, 0x0004, "CS"}, {0x0028, 0x0005, "US"}, {0x0028, 0x0006, "US"},
        {0x0028, 0x0008, "IS"}, {0x0028, 0x0009, "AT"}, {0x0028, 0x0010, "US"}, {0x0028, 0x0011, "US"},
        {0x0028, 0x0012, "US"}, {0x0028, 0x0030, "DS"}, {0x0028, 0x0100, "US"}, {0x0028, 0x0101, "US"},
        {0x0028, 0x0102, "US"}, {0x0028, 0x0103, "US"}, {0x0028, 0x1050, "DS"}, {0x0028, 0x1051, "DS"},
        {0x0028, 0x1052, "DS"}, {0x0028, 0x1053, "DS"}, {0x0028, 0x1054, "LO"}, {0x0028, 0x2110, "CS"},
        {0x0040, 0x9224, "FD"}, {0x0040, 0x9225, "FD"}, {0x0048, 0x0006, "UL"}, {0x0048, 0x0007, "UL"},
        {0x3004, 0x000C, "DS"}, {0x3004, 0x000E, "DS"}, {0x5000, 0x0005, "US"}, {0x5000, 0x0010, "US"},
        {0x5000, 0x0103, "US"}, {0x5000, 0x0110, "US"}, {0x5000, 0x0112, "US"}, {0x5000, 0x0114, "US"},
        {0x6000, 0x0010, "US"}, {0x6000, 0x0011, "US"}, {0x6000, 0x0015, "IS"}, {0x6000, 0x0050, "SS"},
        {0x6000, 0x0051, "US"}, {0x6000, 0x0100, "US"}, {0x6000, 0x0102, "US"}, {0x6000, 0x0200, "US"}};
    const bool repeating = (e.group & 0xFF00) == 0x5000 || (e.group & 0xFF00) == 0x6000;
    const uint16_t group = repeating && e.group % 2 == 0 && (e.group & 0xFF) <= 0x1E ? e.group & 0xFF00 : e.group;
    for (const Typed& t : kTyped) {
      if (t.group != group || t.element != e.element) continue;
      const std::string tag = "(" + hex(e.group) + "," + hex(e.element) + ")";
      const bool unknown = e.vr[0] == 'U' && e.vr[1] == 'N';
      if (explicit_ && !unknown && (e.vr[0] != t.vr[0] || e.vr[1] != t.vr[1]))
        return fail(p, "element " + tag + " has VR " + std::string(e.vr, 2) + ", not " + t.vr);
      const std::string vr = t.vr;
      const uint32_t size = vr == "US" || vr == "SS" ? 2 : vr == "UL" || vr == "AT" ? 4 : vr == "FD" ? 8 : 0;
      const bool binary_ok = size == 0 || e.length == 0 || (vr == "AT" ? e.length % size == 0 : e.length == size);
      if (!binary_ok || e.length == kUndefined)
        return fail(p, "element " + tag + " (" + vr + ") has a value of " + std::to_string(e.length) + " bytes");
      return true;
    }
    return true;
  }

  /// Elements in [p, end); with `in_item`, stops after an item delimiter (returned in end_).
  bool walk(size_t p, size_t end, int depth, bool in_item) {
    if (depth > 32) return fail(p, "sequences nested too deep");
    while (p < end) {
      Element e;
      if (!read_element(p, explicit_, big_, e)) return false;
      if (e.group == 0xFFFE) {
        if (in_item && e.element == 0xE00D) {
          if (e.length != 0) return fail(p, "item delimiter with length " + std::to_string(e.length) + " (must be 0)");
          end_ = e.value;
          return true;
        }
        return fail(p, "unexpected item tag (FFFE," + hex(e.element) + ")");
      }
      if (!check_typed(p, e)) return false;
      if (depth == 0 && e.group == 0x7FE0 && e.element == 0x0010) pixel_data_ = true;
      if (depth == 0 && e.group == 0x0008 && e.element == 0x0010 && e.length != kUndefined)
        recognition_ = {e.value, e.length};
      if (depth == 0 && e.group == 0x0028 && e.length != kUndefined) image_attrs_[e.element] = {e.value, e.length};
      // Undefined length belongs to sequences and encapsulated pixel data: GDCM asserts that such
      // an element's VR is SQ, OB, OW or UN (found by fuzz_image: Pixel Data with VR SS).
      const auto vr_is = [&](const char* v) { return e.vr[0] == v[0] && e.vr[1] == v[1]; };
      if (explicit_ && e.length == kUndefined && !vr_is("SQ") && !vr_is("OB") && !vr_is("OW") && !vr_is("UN"))
        return fail(p, "element (" + hex(e.group) + "," + hex(e.element) + ") of undefined length has VR " +
                           std::string(e.vr, 2) + " (only SQ, OB, OW or UN may)");
      const bool sequence = (explicit_ && vr_is("SQ")) || e.length == kUndefined;
      if (!sequence) {
        p = e.value + e.length;
        continue;
      }
      const size_t seq_end = e.length == kUndefined ? end : e.value + e.length;
      size_t q = e.value;
      bool closed = false;
      while (q < seq_end) {
        Element item;
        if (!read_element(q, false, big_, item)) return false;
        if (item.group != 0xFFFE)
          return fail(q, "expected an item in the sequence (" + hex(e.group) + "," + hex(e.element) + ")");
        if (item.element == 0xE0DD) {  // sequence delimiter
          // Its length must be 0: GDCM asserted on encapsulated pixel data closed by one of
          // length 39 (found by fuzz_image).
          if (item.length != 0)
            return fail(q, "sequence delimiter with length " + std::to_string(item.length) + " (must be 0)");
          q = item.value;
          closed = true;
          break;
        }
        if (item.element != 0xE000) return fail(q, "unexpected tag (FFFE," + hex(item.element) + ") in a sequence");
        if (item.length != kUndefined && item.value + item.length > seq_end)
          return fail(q, "item runs past its sequence");
        if (item.length == kUndefined) {
          if (!walk(item.value, seq_end, depth + 1, true)) return false;
          q = end_;
        } else {
          // Defined-length item: a nested dataset, or an encapsulated pixel fragment.
          const bool fragment = e.group == 0x7FE0;
          if (fragment && depth == 0) pixel_items_.emplace_back(item.value, item.length);
          if (!fragment && !walk(item.value, item.value + item.length, depth + 1, false)) return false;
          q = item.value + item.length;
        }
      }
      if (e.length == kUndefined && !closed)
        return fail(p, "sequence (" + hex(e.group) + "," + hex(e.element) + ") is not closed");
      p = e.length == kUndefined ? q : seq_end;
    }
    if (in_item) return fail(p, "item is not closed");
    return true;
  }

  /// The image pixel description (0028,xxxx) GDCM asserts on when it is inconsistent:
  /// SamplesPerPixel against PhotometricInterpretation, Bits Stored / High Bit against Bits
  /// Allocated, Planar Configuration, Number of Frames, Rows and Columns (and their budget).
  std::string check_pixel_description(uint16_t allocated, int64_t max_pixels) const {
    const auto us = [&](uint16_t element, const char* what, std::optional<uint16_t>& out) -> std::string {
      const auto a = image_attr(element);
      if (!a) return "";
      if (a->second != 2) return std::string(what) + " (0028," + hex(element) + ") is not a 2-byte US value";
      out = u16(a->first, big_);
      return "";
    };
    std::optional<uint16_t> samples, stored, high, planar, rows, cols;
    for (const auto& problem :
         {us(0x0002, "Samples per Pixel", samples), us(0x0101, "Bits Stored", stored), us(0x0102, "High Bit", high),
          us(0x0006, "Planar Configuration", planar), us(0x0010, "Rows", rows), us(0x0011, "Columns", cols)}) {
      if (!problem.empty()) return problem;
    }
    const int spp = samples.value_or(1);
    if (spp != 1 && spp != 3) return std::to_string(spp) + " samples per pixel (0028,0002) are not supported (1 or 3)";
    const std::string photometric = text_attr(0x0004);
    const bool grey = photometric == "MONOCHROME1" || photometric == "MONOCHROME2";
    // The defined terms only: GDCM asserts on any other (found by fuzz_image: "YBR_CHROME2").
    static const char* const kColour[] = {"RGB",     "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420",
                                          "YBR_ICT", "YBR_RCT"};
    const bool colour = std::find(std::begin(kColour), std::end(kColour), photometric) != std::end(kColour);
    if (!photometric.empty() && !grey && !colour)
      return "Photometric Interpretation '" + photometric.substr(0, 32) + "' (0028,0004) is not supported";
    if ((grey && spp != 1) || (colour && spp != 3))
      return "Photometric Interpretation " + photometric + " with " + std::to_string(spp) +
             " samples per pixel (0028,0002)";
    if (stored && (*stored < 1 || *stored > allocated))
      return "Bits Stored " + std::to_string(*stored) + " (0028,0101) outside 1.." + std::to_string(allocated) +
             " (Bits Allocated)";
    if (high && *high != stored.value_or(allocated) - 1)
      return "High Bit " + std::to_string(*high) + " (0028,0102) is not Bits Stored - 1 (" +
             std::to_string(stored.value_or(allocated) - 1) + ")";
    if (planar && spp == 3 && *planar > 1)
      return "Planar Configuration " + std::to_string(*planar) + " (0028,0006) is not 0 or 1";
    if (image_attr(0x0008)) {
      const std::string frames = text_attr(0x0008);
      const bool digits =
          !frames.empty() && frames.size() <= 9 && frames.find_first_not_of("0123456789") == std::string::npos;
      if (!digits || std::stol(frames) < 1)
        return "Number of Frames '" + frames.substr(0, 16) + "' (0028,0008) is not a positive integer";
    }
    if (!rows || !cols || *rows == 0 || *cols == 0) return "no Rows (0028,0010) or Columns (0028,0011)";
    if (int64_t{*rows} * *cols > max_pixels)
      return std::to_string(*cols) + " x " + std::to_string(*rows) +
             " pixels exceed data.transform.max_image_pixels (" + std::to_string(max_pixels) + ")";
    return "";
  }

  /// A top-level (0028,xxxx) string value without its padding ("" when absent).
  std::string text_attr(uint16_t element) const {
    const auto a = image_attr(element);
    if (!a) return "";
    std::string v(b_.data() + a->first, a->second);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.pop_back();
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    return v;
  }

  std::optional<std::pair<size_t, uint32_t>> image_attr(uint16_t element) const {
    const auto it = image_attrs_.find(element);
    return it == image_attrs_.end() ? std::nullopt : std::optional<std::pair<size_t, uint32_t>>(it->second);
  }

  const std::string& b_;
  std::map<uint16_t, std::pair<size_t, uint32_t>> image_attrs_;  // top-level (0028,xxxx): value offset, length
  bool explicit_ = true, big_ = false, pixel_data_ = false;
  std::pair<size_t, uint32_t> recognition_{0, 0};  // (0008,0010): value offset, length
  std::string transfer_syntax_;
  std::vector<std::pair<size_t, uint32_t>> pixel_items_;  // top-level (7FE0,0010) items: value offset, length
  size_t end_ = 0;
  std::string error_;
};

/// Who decodes the pixel data of a transfer syntax. GDCM's codecs decode native data only: JPEG,
/// RLE, JPEG-LS and JPEG 2000 are decoded here (jpeg.h, decode_rle_frame, codestream.h), because
/// GDCM's codecs for them asserted, read out of bounds or leaked on corrupt data (found by
/// fuzz_image). JPEG means every JPEG process, 1.2.840.10008.1.2.4.50 to .66 (baseline, extended,
/// lossless .57; the others retired, which GDCM still handed to its JPEG codec: a retired .53
/// leaked there) and .70 (lossless, first-order prediction); processes libjpeg lacks (arithmetic
/// coding, hierarchical) are its named errors.
enum class PixelCodec { gdcm, ijg, rle, jpegls, jpeg2000 };

PixelCodec pixel_codec(const std::string& ts) {
  if (ts == "1.2.840.10008.1.2.5") return PixelCodec::rle;
  const std::string family = "1.2.840.10008.1.2.4.";
  if (ts.size() != family.size() + 2 || ts.compare(0, family.size(), family) != 0) return PixelCodec::gdcm;
  const std::string process = ts.substr(family.size());
  if (!std::isdigit(static_cast<unsigned char>(process[0])) || !std::isdigit(static_cast<unsigned char>(process[1])))
    return PixelCodec::gdcm;
  const int n = std::stoi(process);
  if ((n >= 50 && n <= 66) || n == 70) return PixelCodec::ijg;
  if (n == 80 || n == 81) return PixelCodec::jpegls;    // lossless, near-lossless
  if (n >= 90 && n <= 93) return PixelCodec::jpeg2000;  // Part 1 and Part 2, lossless and lossy
  return PixelCodec::gdcm;
}

/// Decoded samples written in the pixel type the DICOM header declares (`sample_bytes` each,
/// little-endian, two's complement for negative values), so that one widening path serves every
/// transfer syntax.
template <typename T>
std::vector<char> as_pixel_bytes(const std::vector<T>& samples, size_t sample_bytes) {
  std::vector<char> out(samples.size() * sample_bytes);
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto v = static_cast<uint32_t>(samples[i]);
    std::memcpy(out.data() + i * sample_bytes, &v, sample_bytes);  // little-endian host: the low bytes
  }
  return out;
}

/// The bytes of frame `frame` of encapsulated pixel data (`items`: the basic offset table, then
/// the fragments): the fragments of a one-frame image concatenated; one fragment per frame when
/// there are as many as frames; else the fragments the offset table marks for the frame.
std::string frame_bytes(const std::string& bytes, const std::vector<std::pair<size_t, uint32_t>>& items, int frame,
                        int frames, const std::string& name) {
  MSMEDCAP_CHECK(items.size() >= 2, name, ": malformed DICOM: encapsulated pixel data without fragments");
  const size_t fragments = items.size() - 1;
  size_t first = 0, last = fragments;  // fragments [first, last) make the frame
  if (frames > 1 && fragments == static_cast<size_t>(frames)) {
    first = static_cast<size_t>(frame);
    last = first + 1;
  } else if (frames > 1) {
    const size_t table = items[0].first;
    MSMEDCAP_CHECK(items[0].second == 4u * static_cast<uint32_t>(frames), name, ": malformed DICOM: ", fragments,
                   " fragments for ", frames, " frames, and no basic offset table says which frame is where");
    // Offsets count from the first fragment's item tag, 8 bytes before its value.
    const auto offset = [&](int f) {
      const auto* u = reinterpret_cast<const unsigned char*>(bytes.data() + table + 4 * static_cast<size_t>(f));
      return uint64_t{u[0]} | uint64_t{u[1]} << 8 | uint64_t{u[2]} << 16 | uint64_t{u[3]} << 24;
    };
    const uint64_t begin = offset(frame), end = frame + 1 < frames ? offset(frame + 1) : UINT64_MAX;
    first = last = fragments;
    for (size_t i = 0; i < fragments; ++i) {
      const uint64_t at = items[i + 1].first - items[1].first;
      if (at >= begin && at < end) {
        first = std::min(first, i);
        last = i + 1;
      }
    }
    MSMEDCAP_CHECK(first < last, name, ": malformed DICOM: the basic offset table points frame ", frame,
                   " at no fragment");
  }
  std::string out;
  for (size_t i = first; i < last; ++i) out.append(bytes, items[i + 1].first, items[i + 1].second);
  return out;
}

/// RLE Lossless (PS3.5 annex G), decoded here rather than by GDCM (its RLE codec read out of
/// bounds on a malformed header: found by fuzz_image). A frame is a 64-byte header (the segment
/// count, then 15 little-endian segment offsets) and PackBits segments, one per byte plane:
/// sample by sample, the most significant byte first. Returns the frame interleaved, in the
/// declared pixel type (`sample_bytes` per sample, little-endian).
std::vector<char> decode_rle_frame(const std::string& frame, size_t pixels, int spp, size_t sample_bytes,
                                   const std::string& name) {
  const auto* d = reinterpret_cast<const unsigned char*>(frame.data());
  const auto u32 = [&](size_t p) {
    return uint32_t{d[p]} | uint32_t{d[p + 1]} << 8 | uint32_t{d[p + 2]} << 16 | uint32_t{d[p + 3]} << 24;
  };
  MSMEDCAP_CHECK(frame.size() >= 64, name, ": malformed DICOM: RLE frame of ", frame.size(),
                 " bytes, shorter than its header");
  const size_t segments = u32(0), expected = static_cast<size_t>(spp) * sample_bytes;
  MSMEDCAP_CHECK(segments == expected, name, ": malformed DICOM: RLE header declares ", segments, " segments, ", spp,
                 " samples of ", sample_bytes, " bytes need ", expected);
  std::vector<char> out(pixels * expected);
  for (size_t seg = 0; seg < segments; ++seg) {
    const size_t begin = u32(4 + 4 * seg), end = seg + 1 < segments ? u32(8 + 4 * seg) : frame.size();
    MSMEDCAP_CHECK(begin >= 64 && begin <= end && end <= frame.size(), name, ": malformed DICOM: RLE segment ", seg,
                   " spans bytes ", begin, "..", end, " of a ", frame.size(), "-byte frame");
    // Segment seg holds byte (sample_bytes - 1 - seg % sample_bytes) of sample seg / sample_bytes.
    const size_t sample = seg / sample_bytes, byte = sample_bytes - 1 - seg % sample_bytes;
    const auto put = [&](size_t pixel, unsigned char v) {
      out[(pixel * static_cast<size_t>(spp) + sample) * sample_bytes + byte] = static_cast<char>(v);
    };
    size_t p = begin, written = 0;
    while (written < pixels && p < end) {
      const auto n = static_cast<int8_t>(d[p++]);
      if (n >= 0) {  // n + 1 literal bytes
        const size_t count = static_cast<size_t>(n) + 1;
        MSMEDCAP_CHECK(p + count <= end && written + count <= pixels, name, ": malformed DICOM: RLE segment ", seg,
                       " runs past its data or its ", pixels, " pixels");
        for (size_t k = 0; k < count; ++k) put(written++, d[p++]);
      } else if (n != -128) {  // the next byte 1 - n times
        const size_t count = static_cast<size_t>(1 - n);
        MSMEDCAP_CHECK(p < end && written + count <= pixels, name, ": malformed DICOM: RLE segment ", seg,
                       " runs past its data or its ", pixels, " pixels");
        for (size_t k = 0; k < count; ++k) put(written++, d[p]);
        ++p;
      }
    }
    MSMEDCAP_CHECK(written == pixels, name, ": malformed DICOM: RLE segment ", seg, " decodes to ", written, " of ",
                   pixels, " pixels");
  }
  return out;
}

struct JpegFrame {
  std::string bytes;  ///< the frame's codestream
  detail::JpegHeader header;
};

/// Frame `frame` of encapsulated JPEG pixel data with its frame header.
JpegFrame jpeg_frame_codestream(const std::string& bytes, const std::vector<std::pair<size_t, uint32_t>>& items,
                                int frame, int frames, const std::string& name) {
  JpegFrame out;
  out.bytes = frame_bytes(bytes, items, frame, frames, name);
  const std::string problem =
      detail::read_jpeg_header(reinterpret_cast<const unsigned char*>(out.bytes.data()), out.bytes.size(), out.header);
  MSMEDCAP_CHECK(problem.empty(), name, ": malformed DICOM: ", problem);
  return out;
}

/// Frame `frame` of JPEG pixel data decoded, checked against the DICOM header's `shape`, in the
/// declared pixel type (`sample_bytes` per sample).
std::vector<char> decode_jpeg_frame(const std::string& bytes, const std::vector<std::pair<size_t, uint32_t>>& items,
                                    int frame, int frames, const detail::FrameShape& shape, size_t sample_bytes,
                                    const std::string& name, bool& lossless) {
  const JpegFrame jpeg = jpeg_frame_codestream(bytes, items, frame, frames, name);
  const detail::JpegHeader& h = jpeg.header;
  const std::string fits = detail::check_frame(shape, h.width, h.height, h.components, h.precision);
  MSMEDCAP_CHECK(fits.empty(), name, ": JPEG data: ", fits);
  std::vector<uint16_t> samples;
  bool converted = false;
  const std::string problem = detail::decode_jpeg(reinterpret_cast<const unsigned char*>(jpeg.bytes.data()),
                                                  jpeg.bytes.size(), h, samples, converted);
  MSMEDCAP_CHECK(problem.empty(), name, ": ", problem);
  std::vector<char> out = as_pixel_bytes(samples, sample_bytes);
  lossless = h.lossless;
  return out;
}

}  // namespace

namespace detail {

DecodedImage decode_dicom(const std::string& bytes, const std::string& name, const DecodeOptions& options) {
  DicomWalker walker(bytes);
  const std::string malformed = walker.check(options.max_pixels);
  MSMEDCAP_CHECK(malformed.empty(), name, ": malformed DICOM: ", malformed);
  gdcm::Trace::WarningOff();
  gdcm::Trace::ErrorOff();
  std::istringstream stream(bytes);
  // Compressed pixel data is decoded here (pixel_codec), and GDCM must not even read it: its image
  // reader does (to learn whether the image is lossy), and asserted there. So for those it reads
  // the dataset alone, and its image helper gives what the image reader would.
  const PixelCodec codec = pixel_codec(walker.transfer_syntax());
  const bool own_codec = codec != PixelCodec::gdcm;
  gdcm::Reader dataset_reader;
  gdcm::ImageReader image_reader;
  gdcm::Reader& reader = own_codec ? dataset_reader : image_reader;
  reader.SetStream(stream);
  MSMEDCAP_CHECK(reader.Read(), name, ": not a readable DICOM image (truncated, or no pixel data)");
  const gdcm::File& file = reader.GetFile();
  const gdcm::Image* image = own_codec ? nullptr : &image_reader.GetImage();
  std::vector<unsigned int> dims(3, 1);
  if (image)
    std::copy(image->GetDimensions(), image->GetDimensions() + image->GetNumberOfDimensions(), dims.begin());
  else
    dims = gdcm::ImageHelper::GetDimensionsValue(file);
  const int cols = static_cast<int>(dims.at(0)), rows = static_cast<int>(dims.at(1)),
            frames = static_cast<int>(dims.at(2));
  MSMEDCAP_CHECK(rows > 0 && cols > 0 && frames > 0, name, ": DICOM image has no rows, columns or frames");
  MSMEDCAP_CHECK(options.frame >= 0 && options.frame < frames, name, ": frame ", options.frame,
                 " requested, the file has ", frames);
  const gdcm::PixelFormat pf = image ? image->GetPixelFormat() : gdcm::ImageHelper::GetPixelFormatValue(file);
  const int spp = pf.GetSamplesPerPixel();
  MSMEDCAP_CHECK(spp == 1 || spp == 3, name, ": ", spp, " samples per pixel are not supported");
  const auto pi =
      image ? image->GetPhotometricInterpretation() : gdcm::ImageHelper::GetPhotometricInterpretationValue(file);
  std::string photometric =
      gdcm::PhotometricInterpretation::GetPIString(pi) ? gdcm::PhotometricInterpretation::GetPIString(pi) : "";
  while (!photometric.empty() && photometric.back() == ' ') photometric.pop_back();  // "RGB " is padded to even length
  MSMEDCAP_CHECK(pi != gdcm::PhotometricInterpretation::PALETTE_COLOR, name,
                 ": PALETTE COLOR DICOM images are not supported");

  // Native (uncompressed) pixel data must hold every frame: GDCM's raw codec copies rows x
  // columns x samples x frames whatever the element's length, reading past a shorter one.
  if (const gdcm::ByteValue* raw = image ? image->GetDataElement().GetByteValue() : nullptr) {
    const double needed_bits = static_cast<double>(rows) * cols * frames * spp * pf.GetBitsAllocated();
    MSMEDCAP_CHECK(static_cast<double>(raw->GetLength()) * 8.0 >= needed_bits, name, ": DICOM pixel data holds ",
                   raw->GetLength(), " bytes, fewer than ", rows, " rows x ", cols, " columns x ", spp, " samples x ",
                   frames, " frames of ", pf.GetBitsAllocated(), " bits");
  }
  const size_t per_frame = static_cast<size_t>(rows) * cols * spp;
  const size_t sample_bytes = static_cast<size_t>(pf.GetPixelSize()) / static_cast<size_t>(spp);
  MSMEDCAP_CHECK(sample_bytes > 0, name, ": DICOM pixel type ", pf, " is not supported");
  std::vector<char> buffer;
  const char* src = nullptr;
  bool planar = (image ? image->GetPlanarConfiguration() : gdcm::ImageHelper::GetPlanarConfigurationValue(file)) == 1;
  bool ybr_full = pi == gdcm::PhotometricInterpretation::YBR_FULL;
  const detail::FrameShape shape{cols, rows, spp, static_cast<int>(8 * sample_bytes)};
  if (codec == PixelCodec::ijg) {
    bool lossless = false;
    buffer = decode_jpeg_frame(bytes, walker.pixel_items(), options.frame, frames, shape, sample_bytes, name, lossless);
    ybr_full = ybr_full && lossless;  // lossy colour came back as RGB, or was not YCbCr
  } else if (codec == PixelCodec::rle) {
    buffer = decode_rle_frame(frame_bytes(bytes, walker.pixel_items(), options.frame, frames, name),
                              static_cast<size_t>(rows) * cols, spp, sample_bytes, name);
  } else if (codec == PixelCodec::jpegls || codec == PixelCodec::jpeg2000) {
    const std::string codestream = frame_bytes(bytes, walker.pixel_items(), options.frame, frames, name);
    const auto* data = reinterpret_cast<const unsigned char*>(codestream.data());
    detail::FrameSamples decoded;
    const std::string problem = codec == PixelCodec::jpegls
                                    ? detail::decode_jpegls(data, codestream.size(), shape, decoded)
                                    : detail::decode_jpeg2000(data, codestream.size(), shape, decoded);
    MSMEDCAP_CHECK(problem.empty(), name, ": ", problem);
    buffer = as_pixel_bytes(decoded.samples, sample_bytes);
  }
  if (own_codec) {
    src = buffer.data();
    planar = false;  // our decoders interleave the samples
  } else {
    buffer.resize(image->GetBufferLength());
    MSMEDCAP_CHECK(!buffer.empty() && image->GetBuffer(buffer.data()), name,
                   ": cannot decode the DICOM pixel data (transfer syntax ", walker.transfer_syntax(), ")");
    MSMEDCAP_CHECK(buffer.size() >= per_frame * sample_bytes * (options.frame + 1), name,
                   ": DICOM pixel data is shorter than rows x columns x samples");
    src = buffer.data() + per_frame * sample_bytes * options.frame;
  }
  std::vector<double> values(per_frame);
  const int stored = pf.GetBitsStored();
  switch (pf.GetScalarType()) {
    case gdcm::PixelFormat::UINT8:
      widen<uint8_t>(src, per_frame, stored, false, values.data());
      break;
    case gdcm::PixelFormat::INT8:
      widen<int8_t>(src, per_frame, stored, true, values.data());
      break;
    case gdcm::PixelFormat::UINT16:
      widen<uint16_t>(src, per_frame, stored, false, values.data());
      break;
    case gdcm::PixelFormat::INT16:
      widen<int16_t>(src, per_frame, stored, true, values.data());
      break;
    case gdcm::PixelFormat::UINT32:
      widen<uint32_t>(src, per_frame, stored, false, values.data());
      break;
    case gdcm::PixelFormat::INT32:
      widen<int32_t>(src, per_frame, stored, true, values.data());
      break;
    default:
      MSMEDCAP_FAIL(name, ": DICOM pixel type ", pf, " is not supported");
  }

  DecodedImage out;
  out.format = "dicom";
  out.bits = stored;
  out.photometric = photometric;
  if (spp == 3) {
    // Colour: interleave planar data, convert YBR_FULL, scale by the stored bit depth. No window.
    Image rgb(rows, cols, 3);
    const double scale = 1.0 / (std::pow(2.0, stored) - 1.0);
    const size_t plane = static_cast<size_t>(rows) * cols;
    float* px = rgb.data();
    for (size_t p = 0; p < plane; ++p) {
      float v[3];
      for (int k = 0; k < 3; ++k)
        v[k] = static_cast<float>((planar ? values[k * plane + p] : values[p * 3 + k]) * scale);
      if (ybr_full) {
        // DICOM YBR_FULL (Y, Cb, Cr; PS3.3 C.7.6.3.1.2) to RGB with the coefficients (and float
        // arithmetic) of OpenCV's YCrCb2RGB, which decoded these images before.
        const float y = v[0], cb = v[1] - 0.5f, cr = v[2] - 0.5f;
        v[0] = y + cr * 1.403f;
        v[1] = y + cb * -0.344f + cr * -0.714f;
        v[2] = y + cb * 1.773f;
      }
      for (int k = 0; k < 3; ++k) px[p * 3 + k] = std::min(std::max(v[k], 0.0f), 1.0f);
    }
    out.pixels = std::move(rgb);
    return out;
  }

  if (image) {
    out.slope = image->GetSlope();
    out.intercept = image->GetIntercept();
  } else {
    const std::vector<double> rescale = gdcm::ImageHelper::GetRescaleInterceptSlopeValue(file);  // intercept, slope
    out.intercept = rescale.at(0);
    out.slope = rescale.at(1);
  }
  MSMEDCAP_CHECK(std::isfinite(out.slope) && std::isfinite(out.intercept), name, ": the rescale slope (", out.slope,
                 ") or intercept (", out.intercept, ") is not a finite number");
  for (double& v : values) v = v * out.slope + out.intercept;
  const gdcm::DataSet& ds = file.GetDataSet();
  if (options.window) {
    out.window = options.window;
    out.window_source = "override";
  } else if (auto c = first_ds(ds, 0x0028, 0x1050), w = first_ds(ds, 0x0028, 0x1051); c && w && *w >= 1) {
    out.window = Window{*c, *w};
    out.window_source = "file";
  } else {
    out.window_source = "minmax";
  }
  Image grey(rows, cols, 1);
  float* g = grey.data();
  if (out.window) {
    for (size_t i = 0; i < per_frame; ++i) g[i] = static_cast<float>(apply_window(values[i], *out.window));
  } else {
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    const double range = *hi - *lo;
    for (size_t i = 0; i < per_frame; ++i) g[i] = range > 0 ? static_cast<float>((values[i] - *lo) / range) : 0.0f;
  }
  if (pi == gdcm::PhotometricInterpretation::MONOCHROME1) {  // low values are white
    for (size_t i = 0; i < per_frame; ++i) g[i] = 1.0f - g[i];
  }
  out.pixels = std::move(grey);
  return out;
}

}  // namespace detail

#else

DecodedImage detail::decode_dicom(const std::string&, const std::string& name, const DecodeOptions&) {
  core::fail_built_without(core::Component::kDicom, "decoding " + name + ": DICOM input");
}

#endif

}  // namespace msmedcap::data
