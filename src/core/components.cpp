#include "msmedcap/core/components.h"

#include <cctype>

#include "msmedcap/core/check.h"

// CMake gives this file (and only the files whose code depends on a component) the
// MSMEDCAP_WITH_* macros of the components the build has.
namespace msmedcap::core {
namespace {

constexpr Component kAll[] = {Component::kOpenCv, Component::kDicom, Component::kIcu, Component::kStemmer,
                              Component::kSentencePiece};

}  // namespace

bool built_with(Component component) {
  switch (component) {
    case Component::kOpenCv:
#if MSMEDCAP_WITH_OPENCV
      return true;
#else
      return false;
#endif
    case Component::kDicom:
#if MSMEDCAP_WITH_DICOM
      return true;
#else
      return false;
#endif
    case Component::kIcu:
#if MSMEDCAP_WITH_ICU
      return true;
#else
      return false;
#endif
    case Component::kStemmer:
#if MSMEDCAP_WITH_STEMMER
      return true;
#else
      return false;
#endif
    case Component::kSentencePiece:
#if MSMEDCAP_WITH_SENTENCEPIECE
      return true;
#else
      return false;
#endif
  }
  return false;
}

const char* component_name(Component component) {
  switch (component) {
    case Component::kOpenCv:
      return "opencv";
    case Component::kDicom:
      return "dicom";
    case Component::kIcu:
      return "icu";
    case Component::kStemmer:
      return "stemmer";
    case Component::kSentencePiece:
      return "sentencepiece";
  }
  return "?";
}

std::string components_built() {
  std::string out;
  for (Component c : kAll) {
    if (!built_with(c)) continue;
    if (!out.empty()) out += ' ';
    out += component_name(c);
  }
  return out.empty() ? "none" : out;
}

void fail_built_without(Component component, std::string_view needed_for) {
  std::string option = component_name(component);
  for (char& ch : option) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  MSMEDCAP_FAIL("built without ", component_name(component), " (", needed_for, "); reconfigure with -DMSMEDCAP_WITH_",
                option, "=ON and the library installed");
}

}  // namespace msmedcap::core
