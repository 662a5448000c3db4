// DICOM decoding against pydicom + numpy (tests/golden/make_dicom_golden.py), JPEG DICOM against
// GDCM's own codecs (it transcodes; our JPEG decoder must agree), and the branch transforms
// against PyTorch's antialiased interpolate (tests/golden/make_transform_golden.py).
#include <gtest/gtest.h>

#include <filesystem>

#include <gdcmImageChangePhotometricInterpretation.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "msmedcap/config/data_config.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/opencv_image.h"
#include "msmedcap/data/transforms.h"
#include "msmedcap/io/tensor_store.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

torch::Tensor decoded(const std::string& file, std::optional<data::Window> window = std::nullopt) {
  data::DecodeOptions o;
  o.window = window;
  const auto img = data::decode_image(testing::data_path("images/" + file), o);
  return data::image_to_tensor(img.pixels).narrow(0, 0, img.pixels.channels()).permute({1, 2, 0}).contiguous();
}

TEST(ImageGolden, DicomEqualsPydicomWithRescaleAndWindow) {
  const auto golden = io::TensorStore::open(testing::data_path("images/dicom_golden.safetensors"));
  const std::vector<std::pair<std::string, std::string>> cases = {{"CT_small", "CT_small.dcm"},
                                                                  {"MR_small", "MR_small.dcm"},
                                                                  {"MR_small_RLE", "MR_small_RLE.dcm"},
                                                                  {"MR_small_bigendian", "MR_small_bigendian.dcm"},
                                                                  {"MR_small_implicit", "MR_small_implicit.dcm"}};
  for (const auto& [name, file] : cases) {
    const auto expect = golden.view(name);
    const auto got = decoded(file);
    ASSERT_EQ(got.sizes(), expect.sizes()) << name;
    EXPECT_LT((got - expect).abs().max().item<float>(), 1e-6) << name;
  }
  const auto got = decoded("CT_small.dcm", data::Window{40, 400});
  EXPECT_LT((got - golden.view("CT_small_w40_400")).abs().max().item<float>(), 1e-6);
}

TEST(ImageGolden, DicomFactsAreReported) {
  const auto ct = data::decode_image(testing::data_path("images/CT_small.dcm"));
  EXPECT_EQ(ct.format, "dicom");
  EXPECT_EQ(ct.intercept, -1024);
  EXPECT_EQ(ct.slope, 1);
  EXPECT_EQ(ct.window_source, "minmax");
  const auto mr = data::decode_image(testing::data_path("images/MR_small.dcm"));
  ASSERT_TRUE(mr.window.has_value());
  EXPECT_EQ(mr.window->center, 600);
  EXPECT_EQ(mr.window->width, 1600);
  EXPECT_EQ(mr.window_source, "file");
}

/// `file` (under tests/data/images, or a path) rewritten by GDCM in transfer syntax `ts`: GDCM
/// decodes the pixel data with its own codecs and encodes it again.
std::string transcoded(const std::string& file, gdcm::TransferSyntax::TSType ts, const std::string& out) {
  gdcm::ImageReader reader;
  const std::string in = file.find('/') == std::string::npos ? testing::data_path("images/" + file) : file;
  reader.SetFileName(in.c_str());
  EXPECT_TRUE(reader.Read()) << in;
  gdcm::ImageChangeTransferSyntax change;
  change.SetTransferSyntax(gdcm::TransferSyntax(ts));
  change.SetInput(reader.GetImage());
  EXPECT_TRUE(change.Change()) << in;
  // GDCM keeps a Frame Increment Pointer while it drops Number of Frames from one-frame images;
  // our reader refuses that pair (GDCM asserted on it).
  reader.GetFile().GetDataSet().Remove(gdcm::Tag(0x0028, 0x0009));
  gdcm::ImageWriter writer;
  writer.SetFileName(out.c_str());
  writer.SetFile(reader.GetFile());
  writer.SetImage(change.GetOutput());
  EXPECT_TRUE(writer.Write()) << out;
  return out;
}

double max_difference(const data::Image& image_a, const data::Image& image_b) {
  const cv::Mat a = data::mat_view(image_a), b = data::mat_view(image_b);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(a.type(), b.type());
  return a.size() == b.size() && a.type() == b.type() ? cv::norm(a, b, cv::NORM_INF) : 1e9;
}

TEST(ImageGolden, YbrFullDicomConvertsAsOpenCvAndNearTheRgbOriginal) {
  // GDCM rewrites an RGB image as YBR_FULL. Our conversion (src/data/dicom.cpp, no OpenCV) must
  // equal OpenCV's YCrCb2RGB on the stored samples, which decoded these files before, and come
  // back within rounding of the RGB original.
  testing::TempDir dir;
  const auto native =
      transcoded("SC_rgb_jpeg_gdcm.dcm", gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("rgb.dcm"));
  gdcm::ImageReader reader;
  reader.SetFileName(native.c_str());
  ASSERT_TRUE(reader.Read());
  gdcm::ImageChangePhotometricInterpretation change;
  change.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::YBR_FULL);
  change.SetInput(reader.GetImage());
  ASSERT_TRUE(change.Change());
  const gdcm::Image& ybr_image = change.GetOutput();
  ASSERT_EQ(ybr_image.GetPixelFormat().GetBitsAllocated(), 8);
  ASSERT_EQ(ybr_image.GetPlanarConfiguration(), 0);
  gdcm::ImageWriter writer;
  const std::string ybr_path = dir.file("ybr.dcm");
  writer.SetFileName(ybr_path.c_str());
  writer.SetFile(reader.GetFile());
  writer.SetImage(ybr_image);
  ASSERT_TRUE(writer.Write());

  const auto got = data::decode_image(ybr_path);
  EXPECT_EQ(got.photometric, "YBR_FULL");
  ASSERT_EQ(got.pixels.channels(), 3);
  std::vector<char> stored(ybr_image.GetBufferLength());
  ASSERT_TRUE(ybr_image.GetBuffer(stored.data()));
  const cv::Mat ycbcr(got.pixels.rows(), got.pixels.cols(), CV_8UC3, stored.data());
  cv::Mat ycrcb, expect;
  cv::cvtColor(ycbcr, ycrcb, cv::COLOR_RGB2BGR);  // Y, Cb, Cr -> Cr, Cb, Y
  std::vector<cv::Mat> planes;
  cv::split(ycrcb, planes);
  cv::merge(std::vector<cv::Mat>{planes[2], planes[0], planes[1]}, ycrcb);  // Y, Cr, Cb
  ycrcb.convertTo(ycrcb, CV_32F, 1.0 / 255.0);
  cv::cvtColor(ycrcb, expect, cv::COLOR_YCrCb2RGB);
  cv::min(cv::max(expect, 0.0), 1.0, expect);
  EXPECT_LE(max_difference(got.pixels, data::image_from_mat(expect)), 1e-6);
  EXPECT_LE(max_difference(got.pixels, data::decode_image(native).pixels), 3.0 / 255.0);
}

TEST(ImageGolden, JpegLosslessDicomRoundTripsExactly) {
  // GDCM encodes lossless JPEG (process 14, 16-bit signed CT and 16-bit MR); our decoder must give
  // back the native file's pixels bit for bit.
  testing::TempDir dir;
  for (const std::string file : {"CT_small.dcm", "MR_small.dcm"}) {
    const auto jpeg = transcoded(file, gdcm::TransferSyntax::JPEGLosslessProcess14_1, dir.file("ll-" + file));
    const auto expect = data::decode_image(testing::data_path("images/" + file));
    const auto got = data::decode_image(jpeg);
    EXPECT_EQ(max_difference(got.pixels, expect.pixels), 0.0) << file;
    EXPECT_EQ(got.window_source, expect.window_source) << file;
  }
}

/// Little-endian item header: (FFFE,E000) or another (FFFE,xxxx) tag, then a 32-bit length.
std::string item(uint16_t element, const std::string& value, uint32_t length) {
  std::string out("\xFE\xFF", 2);
  out += static_cast<char>(element & 0xFF);
  out += static_cast<char>(element >> 8);
  for (int k = 0; k < 4; ++k) out += static_cast<char>((length >> (8 * k)) & 0xFF);
  return out + value;
}

/// The fragments of the encapsulated pixel data in `bytes` (a DICOM file GDCM wrote: offset table
/// first, then the fragments), and where the pixel data element begins (`pixel_tag`).
std::vector<std::string> fragments_of(const std::string& bytes, size_t& pixel_tag) {
  pixel_tag = bytes.rfind(std::string("\xE0\x7F\x10\x00OB\x00\x00\xFF\xFF\xFF\xFF", 12));
  std::vector<std::string> out;
  if (pixel_tag == std::string::npos) return out;
  for (size_t p = pixel_tag + 12, k = 0;
       p + 8 <= bytes.size() && bytes.substr(p, 4) == std::string("\xFE\xFF\x00\xE0", 4); ++k) {
    const auto* u = reinterpret_cast<const unsigned char*>(bytes.data() + p + 4);
    const uint32_t length = u[0] | u[1] << 8 | u[2] << 16 | static_cast<uint32_t>(u[3]) << 24;
    if (k > 0) out.push_back(bytes.substr(p + 8, length));
    p += 8 + length;
  }
  return out;
}

/// `bytes` with its encapsulated pixel data replaced by an empty offset table and `fragments`.
std::string with_fragments(const std::string& bytes, const std::vector<std::string>& fragments) {
  size_t pixel_tag = 0;
  fragments_of(bytes, pixel_tag);
  std::string out = bytes.substr(0, pixel_tag + 12) + item(0xE000, "", 0);
  for (const auto& f : fragments) out += item(0xE000, f, static_cast<uint32_t>(f.size()));
  return out + item(0xE0DD, "", 0);
}

TEST(ImageGolden, MultiFrameJpegDicomDecodesEachFrameByFragmentOrOffsetTable) {
  // Two frames (MR_small, then the same turned 180 degrees) made lossless JPEG by GDCM, one
  // fragment per frame; then rewritten with frame 0 split over two fragments and a basic offset
  // table, the layout where the table alone says which fragments make a frame.
  testing::TempDir dir;
  gdcm::ImageReader reader;
  reader.SetFileName(testing::data_path("images/MR_small.dcm").c_str());
  ASSERT_TRUE(reader.Read());
  gdcm::Image& image = reader.GetImage();
  const gdcm::ByteValue* bv = image.GetDataElement().GetByteValue();
  ASSERT_NE(bv, nullptr);
  std::string frame0(bv->GetPointer(), bv->GetLength()), frame1;
  for (size_t p = frame0.size(); p >= 2; p -= 2) frame1 += frame0.substr(p - 2, 2);  // 16-bit pixels reversed
  gdcm::DataElement pixels(gdcm::Tag(0x7FE0, 0x0010));
  pixels.SetByteValue((frame0 + frame1).data(), static_cast<uint32_t>(2 * frame0.size()));
  image.SetNumberOfDimensions(3);
  image.SetDimension(2, 2);
  image.SetDataElement(pixels);
  reader.GetFile().GetDataSet().Remove(gdcm::Tag(0x0028, 0x0009));
  gdcm::ImageChangeTransferSyntax change;
  change.SetTransferSyntax(gdcm::TransferSyntax(gdcm::TransferSyntax::JPEGLosslessProcess14_1));
  change.SetInput(image);
  ASSERT_TRUE(change.Change());
  gdcm::ImageWriter writer;
  const std::string two = dir.file("two_frames.dcm");
  writer.SetFileName(two.c_str());
  writer.SetFile(reader.GetFile());
  writer.SetImage(change.GetOutput());
  ASSERT_TRUE(writer.Write());

  const data::Image expect0 = data::decode_image(testing::data_path("images/MR_small.dcm")).pixels;
  cv::Mat flipped;
  cv::flip(data::mat_view(expect0), flipped, -1);
  const data::Image expect1 = data::image_from_mat(flipped);
  const auto frame = [](const std::string& path, int f) {
    data::DecodeOptions o;
    o.frame = f;
    return data::decode_image(path, o).pixels;
  };
  EXPECT_EQ(max_difference(frame(two, 0), expect0), 0.0);
  EXPECT_EQ(max_difference(frame(two, 1), expect1), 0.0);

  // The same codestreams as three fragments (frame 0 cut in two) behind an offset table.
  const std::string bytes = testing::read_text(two);
  size_t pixel_tag = 0;
  const std::vector<std::string> fragments = fragments_of(bytes, pixel_tag);
  ASSERT_EQ(fragments.size(), 2u);
  const std::string a = fragments[0].substr(0, 100), b = fragments[0].substr(100);
  const uint32_t second = static_cast<uint32_t>(8 + a.size() + 8 + b.size());
  std::string table;
  for (const uint32_t offset : {0u, second})
    for (int k = 0; k < 4; ++k) table += static_cast<char>((offset >> (8 * k)) & 0xFF);
  const std::string split =
      bytes.substr(0, pixel_tag + 12) + item(0xE000, table, 8) + item(0xE000, a, static_cast<uint32_t>(a.size())) +
      item(0xE000, b, static_cast<uint32_t>(b.size())) +
      item(0xE000, fragments[1], static_cast<uint32_t>(fragments[1].size())) + item(0xE0DD, "", 0);
  testing::write_text(dir.file("split.dcm"), split);
  EXPECT_EQ(max_difference(frame(dir.file("split.dcm"), 0), expect0), 0.0);
  EXPECT_EQ(max_difference(frame(dir.file("split.dcm"), 1), expect1), 0.0);
  // Without the table, three fragments for two frames cannot be told apart: a named error.
  testing::write_text(dir.file("no_table.dcm"), with_fragments(bytes, {a, b, fragments[1]}));
  try {
    frame(dir.file("no_table.dcm"), 1);
    FAIL() << "three fragments for two frames without an offset table must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 fragments for 2 frames"), std::string::npos) << e.what();
  }
}

TEST(ImageGolden, RleColourDicomRoundTripsExactly) {
  // RLE is decoded by us too (GDCM's RLE codec read out of bounds on a malformed header): the
  // RGB fixture made RLE by GDCM (three samples, one byte each) gives back the native pixels,
  // and the 16-bit MR (two byte planes) is checked against pydicom in
  // DicomEqualsPydicomWithRescaleAndWindow.
  testing::TempDir dir;
  const auto native =
      transcoded("SC_rgb_jpeg_gdcm.dcm", gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("n.dcm"));
  const auto rle = transcoded(native, gdcm::TransferSyntax::RLELossless, dir.file("rle.dcm"));
  const auto got = data::decode_image(rle).pixels;
  ASSERT_EQ(got.channels(), 3);
  EXPECT_EQ(max_difference(got, data::decode_image(native).pixels), 0.0);
}

TEST(ImageGolden, JpegDicomEqualsGdcmsOwnDecoder) {
  // The shipped JPEG files (12-bit extended lossy grey; 8-bit lossless RGB), decoded by GDCM
  // into native files, against our decoder on the originals.
  testing::TempDir dir;
  for (const std::string file : {"JPEG-lossy.dcm", "SC_rgb_jpeg_gdcm.dcm"}) {
    const auto native = transcoded(file, gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("native-" + file));
    const auto got = data::decode_image(testing::data_path("images/" + file));
    EXPECT_EQ(max_difference(got.pixels, data::decode_image(native).pixels), 0.0) << file;
  }
  const auto lossy = data::decode_image(testing::data_path("images/JPEG-lossy.dcm"));
  EXPECT_EQ(lossy.pixels.rows(), 1024);
  EXPECT_EQ(lossy.pixels.cols(), 256);
  EXPECT_EQ(lossy.pixels.channels(), 1);
  EXPECT_EQ(lossy.bits, 12);
}

TEST(ImageGolden, JpegBaselineColourDicomIsNearTheOriginalRgb) {
  // 8-bit baseline (lossy, YCbCr-coded) made by GDCM from the lossless RGB file: the decoder must
  // convert back to RGB, so every channel stays near the original. GDCM labels the result RGB
  // (and its own decoder then returns YCbCr as RGB, 92/255 off on average): the codestream
  // decides, not the label.
  testing::TempDir dir;
  const auto native =
      transcoded("SC_rgb_jpeg_gdcm.dcm", gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("n.dcm"));
  const auto baseline = transcoded(native, gdcm::TransferSyntax::JPEGBaselineProcess1, dir.file("b.dcm"));
  const auto expect = data::decode_image(native).pixels;
  const auto decoded = data::decode_image(baseline);
  EXPECT_EQ(decoded.photometric, "RGB");
  const cv::Mat got = data::mat_view(decoded.pixels), expect_mat = data::mat_view(expect);
  ASSERT_EQ(got.size(), expect_mat.size());
  ASSERT_EQ(got.channels(), 3);
  const cv::Scalar mean_error = cv::mean(cv::abs(got - expect_mat));
  for (int c = 0; c < 3; ++c) EXPECT_LT(mean_error[c], 0.02) << "channel " << c;
}

TEST(ImageGolden, CorruptJpegDicomIsANamedError) {
  // An EOI marker written into the middle of the entropy-coded data: the decoder reports the
  // premature end (GDCM's codec decoded such streams into garbage or leaked its decompressor).
  testing::TempDir dir;
  std::string bytes = testing::read_text(testing::data_path("images/SC_rgb_jpeg_gdcm.dcm"));
  const size_t sos = bytes.find("\xFF\xDA");
  ASSERT_NE(sos, std::string::npos);
  bytes.replace(sos + 400, 2, "\xFF\xD9");
  testing::write_text(dir.file("cut.dcm"), bytes);
  try {
    data::decode_image(dir.file("cut.dcm"));
    FAIL() << "a corrupt JPEG stream must be refused";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cut.dcm: JPEG data: Corrupt JPEG data: premature end of data segment"), std::string::npos)
        << what;
  }
}

const std::vector<std::pair<gdcm::TransferSyntax::TSType, std::string>> kLosslessSyntaxes = {
    {gdcm::TransferSyntax::JPEGLSLossless, "1.2.840.10008.1.2.4.80"},
    {gdcm::TransferSyntax::JPEG2000Lossless, "1.2.840.10008.1.2.4.90"}};

TEST(ImageGolden, JpegLsAndJpeg2000LosslessDicomRoundTripExactly) {
  // JPEG-LS and JPEG 2000 are decoded by msmedcap through CharLS and OpenJPEG (GDCM's JPEG 2000
  // codec leaked OpenJPEG's decoder on corrupt codestreams: finding 16). GDCM encodes; our decoder
  // gives back the native pixels bit for bit: 16-bit signed CT, 16-bit MR, 8-bit RGB.
  testing::TempDir dir;
  const std::vector<std::string> files = {
      testing::data_path("images/CT_small.dcm"), testing::data_path("images/MR_small.dcm"),
      transcoded("SC_rgb_jpeg_gdcm.dcm", gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("rgb.dcm"))};
  for (const auto& file : files) {
    const auto expect = data::decode_image(file);
    for (const auto& [ts, uid] : kLosslessSyntaxes) {
      const auto coded = transcoded(file, ts, dir.file(uid + "-" + std::filesystem::path(file).filename().string()));
      ASSERT_NE(testing::read_text(coded).find(uid), std::string::npos) << coded;
      const auto got = data::decode_image(coded);
      EXPECT_EQ(max_difference(got.pixels, expect.pixels), 0.0) << coded;
      EXPECT_EQ(got.pixels.channels(), expect.pixels.channels()) << coded;
    }
  }
}

TEST(ImageGolden, OtherEncodersJpegLsAndJpeg2000DicomDecode) {
  // Files not written by GDCM (pydicom's test files): the MR image as JPEG-LS and JPEG 2000
  // lossless gives back the native MR's pixels; the irreversible JPEG 2000 file equals GDCM's
  // own decoding of it.
  const auto mr = data::decode_image(testing::data_path("images/MR_small.dcm")).pixels;
  for (const std::string file : {"MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"})
    EXPECT_EQ(max_difference(data::decode_image(testing::data_path("images/" + file)).pixels, mr), 0.0) << file;
  testing::TempDir dir;
  const auto by_gdcm = transcoded("JPEG2000.dcm", gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("n.dcm"));
  const auto got = data::decode_image(testing::data_path("images/JPEG2000.dcm"));
  EXPECT_EQ(got.pixels.rows(), 1024);
  EXPECT_EQ(got.pixels.cols(), 256);
  EXPECT_EQ(max_difference(got.pixels, data::decode_image(by_gdcm).pixels), 0.0);
}

TEST(ImageGolden, LossyJpegLsAndJpeg2000DicomEqualGdcmsOwnDecoder) {
  // Near-lossless JPEG-LS and irreversible JPEG 2000 (GDCM encodes, and decodes into a native
  // file): our decoding equals GDCM's and stays near the original.
  testing::TempDir dir;
  for (const std::string file : {"MR_small.dcm", "SC_rgb_jpeg_gdcm.dcm"}) {
    const auto native = transcoded(file, gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("n-" + file));
    const auto original = data::decode_image(native).pixels;
    for (const auto ts : {gdcm::TransferSyntax::JPEGLSNearLossless, gdcm::TransferSyntax::JPEG2000}) {
      const std::string tag = std::to_string(static_cast<int>(ts)) + "-" + file;
      const auto coded = transcoded(native, ts, dir.file("c" + tag));
      const auto by_gdcm = transcoded(coded, gdcm::TransferSyntax::ExplicitVRLittleEndian, dir.file("g" + tag));
      const auto got = data::decode_image(coded).pixels;
      EXPECT_EQ(max_difference(got, data::decode_image(by_gdcm).pixels), 0.0) << tag;
      EXPECT_LT(max_difference(got, original), 0.05) << tag;
    }
  }
}

TEST(ImageGolden, CorruptJpegLsAndJpeg2000DicomAreNamedErrors) {
  // Each codestream cut to half its length, and one whose header declares another image size.
  testing::TempDir dir;
  const std::vector<std::pair<gdcm::TransferSyntax::TSType, std::string>> cases = {
      {gdcm::TransferSyntax::JPEGLSLossless, "JPEG-LS data: "},
      {gdcm::TransferSyntax::JPEG2000Lossless, "JPEG 2000 data: "}};
  for (const auto& [ts, prefix] : cases) {
    const std::string bytes = testing::read_text(transcoded("MR_small.dcm", ts, dir.file("whole.dcm")));
    size_t pixel_tag = 0;
    const auto fragments = fragments_of(bytes, pixel_tag);
    ASSERT_EQ(fragments.size(), 1u) << prefix;
    std::string half = fragments[0].substr(0, fragments[0].size() / 2);
    if (half.size() % 2) half.pop_back();
    testing::write_text(dir.file("half.dcm"), with_fragments(bytes, {half}));
    try {
      data::decode_image(dir.file("half.dcm"));
      ADD_FAILURE() << prefix << "a truncated codestream must be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("half.dcm: " + prefix), std::string::npos) << e.what();
    }
  }
  // JPEG 2000's SIZ segment (after SOC) declares 64 x 64; MR_small is 64 x 64, so 65 wide is a lie.
  const std::string bytes =
      testing::read_text(transcoded("MR_small.dcm", gdcm::TransferSyntax::JPEG2000Lossless, dir.file("j.dcm")));
  size_t pixel_tag = 0;
  auto fragments = fragments_of(bytes, pixel_tag);
  ASSERT_EQ(fragments.size(), 1u);
  ASSERT_EQ(fragments[0].substr(0, 4), std::string("\xFF\x4F\xFF\x51", 4));
  ASSERT_EQ(fragments[0].substr(8, 4), std::string("\x00\x00\x00\x40", 4));  // Xsiz
  fragments[0][11] = 0x41;
  testing::write_text(dir.file("wide.dcm"), with_fragments(bytes, fragments));
  try {
    data::decode_image(dir.file("wide.dcm"));
    ADD_FAILURE() << "a codestream of another size must be refused";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("wide.dcm: JPEG 2000 header: the frame is 65 x 64 with 1 components, the DICOM "
                                   "header says 64 x 64 with 1"),
        std::string::npos)
        << e.what();
  }
}

TEST(ImageGolden, TransformsEqualTorchAntialiasedInterpolate) {
  const auto golden = io::TensorStore::open(testing::data_path("images/transform_golden.safetensors"));
  const auto image = data::image_to_tensor(data::decode_image(testing::data_path("images/transform_input.png")).pixels);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 37, 53}));
  for (int64_t s : {24, 80}) {
    config::ImageTransformConfig cfg;
    cfg.clip_size = s;
    const auto got = data::clip_transform(image, cfg);
    EXPECT_LT((got - golden.view("clip_" + std::to_string(s))).abs().max().item<float>(), 2e-5) << s;
  }
  for (int64_t s : {32, 96}) {
    config::ImageTransformConfig cfg;
    cfg.sam_size = s;
    const auto got = data::sam_transform(image, cfg);
    EXPECT_LT((got - golden.view("sam_" + std::to_string(s))).abs().max().item<float>(), 2e-5) << s;
  }
}

}  // namespace
}  // namespace msmedcap
