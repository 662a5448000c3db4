#pragma once
/// Images to caption that are not a dataset: every image of a folder, or a list file.

#include <string>
#include <vector>

#include "msmedcap/data/datasets.h"

namespace msmedcap::data {

/// The files of `dir` (not recursive) whose extension is an image format msmedcap reads (png, jpg,
/// jpeg, tif, tiff, bmp, dcm, dicom; any case), sorted by name; the id is the file name (with its
/// extension: scan.png and scan.jpg stay two). A missing folder is an error naming it.
std::vector<Sample> images_in_folder(const std::string& dir);

/// A list file: one image per line, either a path or `id<TAB>path`; relative paths are taken
/// from the list's folder; blank lines and lines starting with '#' are skipped. Without an id the
/// id is the path as written. Duplicate ids are an error naming file:line.
std::vector<Sample> read_image_list(const std::string& path);

}  // namespace msmedcap::data
