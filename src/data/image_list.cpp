#include "msmedcap/data/image_list.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>

#include "msmedcap/core/check.h"

namespace msmedcap::data {
namespace fs = std::filesystem;

namespace {
bool is_image_extension(std::string ext) {
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::set<std::string> kKnown = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"};
  return kKnown.count(ext) > 0;
}
}  // namespace

std::vector<Sample> images_in_folder(const std::string& dir) {
  MSMEDCAP_CHECK(fs::is_directory(dir), dir, ": not a folder");
  std::vector<Sample> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || !is_image_extension(entry.path().extension().string())) continue;
    Sample s;
    s.id = entry.path().filename().string();  // scan.png and scan.jpg are two ids
    s.image = entry.path().string();
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const Sample& a, const Sample& b) { return a.image < b.image; });
  return out;
}

std::vector<Sample> read_image_list(const std::string& path) {
  std::ifstream in(path);
  MSMEDCAP_CHECK(in.good(), path, ": cannot open");
  const fs::path base = fs::path(path).parent_path();
  std::vector<Sample> out;
  std::set<std::string> ids;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    Sample s;
    const auto tab = line.find('\t');
    std::string file = tab == std::string::npos ? line : line.substr(tab + 1);
    s.id = tab == std::string::npos ? line : line.substr(0, tab);
    MSMEDCAP_CHECK(!s.id.empty() && !file.empty(), path, ":", n, ": expected a path or id<TAB>path");
    MSMEDCAP_CHECK(ids.insert(s.id).second, path, ":", n, ": id ", s.id, " listed twice");
    s.image = fs::path(file).is_absolute() ? file : (base / file).string();
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace msmedcap::data
