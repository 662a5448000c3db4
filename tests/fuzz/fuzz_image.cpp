// Image decoding on arbitrary bytes: PNG, JPEG, TIFF, BMP through OpenCV and DICOM through GDCM
// (chosen by content). A corrupt image must end in msmedcap::Error naming it.
#include <cstdint>
#include <string>

#include "msmedcap/core/check.h"
#include "msmedcap/data/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)msmedcap::data::decode_image_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const msmedcap::Error&) {
  }
  return 0;
}
