#include "msmedcap/data/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "spm_bridge.h"  // third_party/sentencepiece_bridge (C ABI only)
#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"

namespace msmedcap::data {

namespace detail {

/// The bridge's entry points, resolved once per process.
struct SpmBridge {
  std::string path;
  decltype(&msm_spm_load) load = nullptr;
  decltype(&msm_spm_free) free = nullptr;
  decltype(&msm_spm_encode) encode = nullptr;
  decltype(&msm_spm_decode) decode = nullptr;
  decltype(&msm_spm_vocab_size) vocab_size = nullptr;
  decltype(&msm_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&msm_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&msm_spm_special_id) special_id = nullptr;
  decltype(&msm_spm_train) train = nullptr;
};

namespace {

#if MSMEDCAP_WITH_SENTENCEPIECE
std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::vector<std::string> candidate_paths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("MSMEDCAP_SPM_BRIDGE"); env != nullptr && *env != '\0') {
    paths.emplace_back(env);
  }
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    const std::string dir = dir_of(exe);
    paths.push_back(dir + "/" + MSMEDCAP_SPM_BRIDGE_NAME);
    paths.push_back(dir + "/../lib/" + MSMEDCAP_SPM_BRIDGE_NAME);
  }
  paths.emplace_back(MSMEDCAP_SPM_BRIDGE_BUILD_PATH);
  paths.emplace_back(MSMEDCAP_SPM_BRIDGE_NAME);  // the dynamic linker's search path
  return paths;
}

template <class F>
void resolve(void* handle, const char* name, F& out, const std::string& path) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  MSMEDCAP_CHECK(out != nullptr, path, ": sentencepiece bridge lacks symbol ", name);
}

#endif  // MSMEDCAP_WITH_SENTENCEPIECE

const SpmBridge& bridge() {
#if !MSMEDCAP_WITH_SENTENCEPIECE
  core::fail_built_without(core::Component::kSentencePiece, "SentencePiece tokenizers (the bridge library)");
#else
  static std::once_flag once;
  static SpmBridge instance;
  static std::string failure;
  std::call_once(once, [] {
#if defined(__SANITIZE_ADDRESS__) && !defined(MSMEDCAP_SPM_WITHOUT_DEEPBIND)
    // AddressSanitizer refuses RTLD_DEEPBIND, and without it sentencepiece's protobuf clashes
    // with LibTorch's: no SentencePiece in a MSMEDCAP_SANITIZE=address build. (The fuzz build
    // has no LibTorch in its processes and opens the bridge without RTLD_DEEPBIND.)
    failure =
        "sentencepiece is unavailable in an AddressSanitizer build (the sanitizer refuses the bridge's "
        "RTLD_DEEPBIND)";
    return;
#endif
    std::string tried;
    for (const auto& path : candidate_paths()) {
      // RTLD_LOCAL | RTLD_DEEPBIND: sentencepiece's protobuf 3.14 stays private to the bridge.
#if defined(MSMEDCAP_SPM_WITHOUT_DEEPBIND)
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
      if (handle == nullptr) {
        tried += (tried.empty() ? "" : "; ") + path;
        continue;
      }
      try {
        decltype(&msm_spm_abi_version) abi = nullptr;
        resolve(handle, "msm_spm_abi_version", abi, path);
        MSMEDCAP_CHECK(abi() == MSMEDCAP_SPM_BRIDGE_ABI, path, ": bridge ABI ", abi(), ", expected ",
                       MSMEDCAP_SPM_BRIDGE_ABI);
        resolve(handle, "msm_spm_load", instance.load, path);
        resolve(handle, "msm_spm_free", instance.free, path);
        resolve(handle, "msm_spm_encode", instance.encode, path);
        resolve(handle, "msm_spm_decode", instance.decode, path);
        resolve(handle, "msm_spm_vocab_size", instance.vocab_size, path);
        resolve(handle, "msm_spm_piece_to_id", instance.piece_to_id, path);
        resolve(handle, "msm_spm_id_to_piece", instance.id_to_piece, path);
        resolve(handle, "msm_spm_special_id", instance.special_id, path);
        resolve(handle, "msm_spm_train", instance.train, path);
        instance.path = path;
        return;
      } catch (const Error& e) {
        failure = e.what();
        return;
      }
    }
    failure = "sentencepiece bridge " + std::string(MSMEDCAP_SPM_BRIDGE_NAME) + " not found (tried " + tried +
              "); set MSMEDCAP_SPM_BRIDGE to its path";
  });
  MSMEDCAP_CHECK(failure.empty(), failure);
  return instance;
#endif
}

}  // namespace
}  // namespace detail

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : bridge_(&detail::bridge()), path_(model_path) {
  char err[1024] = {0};
  handle_ = bridge_->load(model_path.c_str(), err, sizeof(err));
  MSMEDCAP_CHECK(handle_ != nullptr, model_path, ": cannot load sentencepiece model: ", err);
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (handle_ != nullptr) bridge_->free(static_cast<msm_spm*>(handle_));
}

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text) const {
  auto* model = static_cast<msm_spm*>(handle_);
  std::vector<int32_t> ids(text.size() + 16);
  char err[1024] = {0};
  long n = bridge_->encode(model, text.data(), text.size(), ids.data(), ids.size(), err, sizeof(err));
  MSMEDCAP_CHECK(n >= 0, path_, ": encode failed: ", err);
  if (static_cast<size_t>(n) > ids.size()) {
    ids.resize(static_cast<size_t>(n));
    n = bridge_->encode(model, text.data(), text.size(), ids.data(), ids.size(), err, sizeof(err));
    MSMEDCAP_CHECK(n >= 0, path_, ": encode failed: ", err);
  }
  ids.resize(static_cast<size_t>(n));
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  auto* model = static_cast<msm_spm*>(handle_);
  std::string text(ids.size() * 8 + 16, '\0');
  char err[1024] = {0};
  long n = bridge_->decode(model, ids.data(), ids.size(), text.data(), text.size(), err, sizeof(err));
  MSMEDCAP_CHECK(n >= 0, path_, ": decode failed: ", err);
  if (static_cast<size_t>(n) > text.size()) {
    text.resize(static_cast<size_t>(n));
    n = bridge_->decode(model, ids.data(), ids.size(), text.data(), text.size(), err, sizeof(err));
    MSMEDCAP_CHECK(n >= 0, path_, ": decode failed: ", err);
  }
  text.resize(static_cast<size_t>(n));
  return text;
}

int SentencePieceTokenizer::vocab_size() const { return bridge_->vocab_size(static_cast<msm_spm*>(handle_)); }

int SentencePieceTokenizer::piece_to_id(const std::string& piece) const {
  return bridge_->piece_to_id(static_cast<msm_spm*>(handle_), piece.c_str());
}

std::string SentencePieceTokenizer::id_to_piece(int id) const {
  std::string piece(64, '\0');
  long n = bridge_->id_to_piece(static_cast<msm_spm*>(handle_), id, piece.data(), piece.size());
  MSMEDCAP_CHECK(n >= 0, path_, ": id ", id, " is outside the vocabulary of ", vocab_size());
  if (static_cast<size_t>(n) > piece.size()) {
    piece.resize(static_cast<size_t>(n));
    n = bridge_->id_to_piece(static_cast<msm_spm*>(handle_), id, piece.data(), piece.size());
  }
  piece.resize(static_cast<size_t>(n));
  return piece;
}

int SentencePieceTokenizer::unk_id() const { return bridge_->special_id(static_cast<msm_spm*>(handle_), 0); }
int SentencePieceTokenizer::bos_id() const { return bridge_->special_id(static_cast<msm_spm*>(handle_), 1); }
int SentencePieceTokenizer::eos_id() const { return bridge_->special_id(static_cast<msm_spm*>(handle_), 2); }
int SentencePieceTokenizer::pad_id() const { return bridge_->special_id(static_cast<msm_spm*>(handle_), 3); }

void SentencePieceTokenizer::train(const std::string& args) {
  char err[2048] = {0};
  MSMEDCAP_CHECK(detail::bridge().train(args.c_str(), err, sizeof(err)) == 0, "sentencepiece training failed: ", err);
}

std::string SentencePieceTokenizer::bridge_path() { return detail::bridge().path; }

}  // namespace msmedcap::data
