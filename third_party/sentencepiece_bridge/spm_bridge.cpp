// Implementation of the bridge ABI over Debian's libsentencepiece (see spm_bridge.h).
#include "spm_bridge.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <ext/stdio_sync_filebuf.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#define MSM_EXPORT __attribute__((visibility("default")))

struct msm_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

// Under RTLD_DEEPBIND this library (and sentencepiece) bind std::cerr/cout/clog to libstdc++'s
// own objects. When the executable holds copy-relocated versions of them (the usual case for a
// program that uses iostreams), libstdc++'s originals are never constructed, and the first
// LOG(INFO) of sentencepiece's trainer would write through a zeroed ostream and crash. Construct
// them here, once, on the C stdio streams; when they are already live this does nothing.
void ensure_streams() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::cerr.rdbuf() == nullptr) {
      static __gnu_cxx::stdio_sync_filebuf<char> err_buf(stderr);
      new (&std::cerr) std::ostream(&err_buf);
    }
    if (std::clog.rdbuf() == nullptr) {
      static __gnu_cxx::stdio_sync_filebuf<char> log_buf(stderr);
      new (&std::clog) std::ostream(&log_buf);
    }
    if (std::cout.rdbuf() == nullptr) {
      static __gnu_cxx::stdio_sync_filebuf<char> out_buf(stdout);
      new (&std::cout) std::ostream(&out_buf);
    }
  });
}

void set_error(char* err, size_t err_len, const std::string& message) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = message.size() < err_len - 1 ? message.size() : err_len - 1;
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}
}  // namespace

extern "C" {

MSM_EXPORT int msm_spm_abi_version(void) { return MSMEDCAP_SPM_BRIDGE_ABI; }

MSM_EXPORT msm_spm* msm_spm_load(const char* path, char* err, size_t err_len) {
  ensure_streams();
  try {
    // Owned until returned: Load can throw on a malformed model as well as fail (the model
    // leaked on a throw before; found by fuzz_sentencepiece).
    auto model = std::make_unique<msm_spm>();
    const auto status = model->processor.Load(path);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      return nullptr;
    }
    return model.release();
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return nullptr;
  }
}

MSM_EXPORT void msm_spm_free(msm_spm* model) { delete model; }

MSM_EXPORT long msm_spm_encode(msm_spm* model, const char* text, size_t len, int32_t* out, size_t cap, char* err,
                               size_t err_len) {
  try {
    std::vector<int> ids;
    const auto status = model->processor.Encode(std::string(text, len), &ids);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      return -1;
    }
    for (size_t i = 0; i < ids.size() && i < cap; ++i) out[i] = ids[i];
    return static_cast<long>(ids.size());
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return -1;
  }
}

MSM_EXPORT long msm_spm_decode(msm_spm* model, const int32_t* ids, size_t n, char* out, size_t cap, char* err,
                               size_t err_len) {
  try {
    std::vector<int> v(ids, ids + n);
    std::string text;
    const auto status = model->processor.Decode(v, &text);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      return -1;
    }
    std::memcpy(out, text.data(), text.size() < cap ? text.size() : cap);
    return static_cast<long>(text.size());
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return -1;
  }
}

MSM_EXPORT int msm_spm_vocab_size(msm_spm* model) { return model->processor.GetPieceSize(); }

MSM_EXPORT int msm_spm_piece_to_id(msm_spm* model, const char* piece) { return model->processor.PieceToId(piece); }

MSM_EXPORT long msm_spm_id_to_piece(msm_spm* model, int id, char* out, size_t cap) {
  if (id < 0 || id >= model->processor.GetPieceSize()) return -1;
  const std::string& piece = model->processor.IdToPiece(id);
  std::memcpy(out, piece.data(), piece.size() < cap ? piece.size() : cap);
  return static_cast<long>(piece.size());
}

MSM_EXPORT int msm_spm_special_id(msm_spm* model, int which) {
  switch (which) {
    case 0:
      return model->processor.unk_id();
    case 1:
      return model->processor.bos_id();
    case 2:
      return model->processor.eos_id();
    case 3:
      return model->processor.pad_id();
    default:
      return -1;
  }
}

MSM_EXPORT int msm_spm_train(const char* args, char* err, size_t err_len) {
  ensure_streams();
  try {
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return 1;
  }
}

}  // extern "C"
