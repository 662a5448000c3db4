#pragma once
/// The optional components a build may leave out (CMake options MSMEDCAP_WITH_*). The core
/// (configs, safetensors, models, losses, training, generation on token ids, distributed, bench)
/// needs LibTorch and header-only libraries alone; each component brings one outside library:
///  * opencv:        PNG, JPEG, TIFF and BMP input, the synthetic benchmark, plots, attention overlays
///  * dicom:         DICOM input (GDCM, OpenJPEG, CharLS)
///  * icu:           Unicode text (ICU): the WordPiece and BPE tokenizers, METEOR's tokenizer
///  * stemmer:       METEOR's stemming stage (Snowball libstemmer)
///  * sentencepiece: SentencePiece tokenizers (the bridge library, third_party/sentencepiece_bridge)
/// Code that needs a component it was built without fails with "built without X".

#include <string>
#include <string_view>

namespace msmedcap::core {

enum class Component { kOpenCv, kDicom, kIcu, kStemmer, kSentencePiece };

/// Whether this build has `component`.
bool built_with(Component component);

/// "opencv", "dicom", "icu", "stemmer" or "sentencepiece".
const char* component_name(Component component);

/// The components built in, space-separated ("opencv dicom icu ..."; "none" when none are).
std::string components_built();

/// Throws msmedcap::Error "built without <name> (<what needs it>); reconfigure with
/// -DMSMEDCAP_WITH_<NAME>=ON and the library installed".
[[noreturn]] void fail_built_without(Component component, std::string_view needed_for);

}  // namespace msmedcap::core
