#pragma once
// The two decoder families behind data::decode_image_bytes (image_io.cpp dispatches): each is
// built with its component, or fails with "built without ..." (core/components.h).

#include <string>

#include "msmedcap/data/image_io.h"

namespace msmedcap::data::detail {

/// PNG, JPEG, TIFF, BMP and the other formats OpenCV reads (src/data/raster.cpp, component opencv).
DecodedImage decode_raster(const std::string& bytes, const std::string& name, const DecodeOptions& options);

/// DICOM Part 10 (src/data/dicom.cpp, component dicom).
DecodedImage decode_dicom(const std::string& bytes, const std::string& name, const DecodeOptions& options);

}  // namespace msmedcap::data::detail
