/* C ABI of libmsmedcap_spm_bridge.so, the only msmedcap binary that links libsentencepiece.
 * msmedcap never links it: it dlopen()s it with RTLD_LOCAL | RTLD_DEEPBIND so that the protobuf
 * 3.14 symbols inside Debian's libsentencepiece.so.0 resolve inside the bridge and never meet
 * libtorch's protobuf 3.21 (a process holding both crashes at start-up otherwise).
 * Every function reports failures through its return value and an error buffer; no C++
 * exception crosses this boundary. */
#ifndef MSMEDCAP_SPM_BRIDGE_H_
#define MSMEDCAP_SPM_BRIDGE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSMEDCAP_SPM_BRIDGE_ABI 1

typedef struct msm_spm msm_spm;

/* The ABI version this bridge implements (MSMEDCAP_SPM_BRIDGE_ABI). */
int msm_spm_abi_version(void);
/* Loads a .model file; NULL on failure with a message in err. */
msm_spm* msm_spm_load(const char* path, char* err, size_t err_len);
void msm_spm_free(msm_spm* model);
/* Encodes UTF-8 text to ids. Writes at most cap ids; returns the full count (call again with a
 * larger buffer when it exceeds cap), or -1 on failure. */
long msm_spm_encode(msm_spm* model, const char* text, size_t len, int32_t* out, size_t cap, char* err, size_t err_len);
/* Decodes ids to UTF-8. Writes at most cap bytes; returns the full length or -1. */
long msm_spm_decode(msm_spm* model, const int32_t* ids, size_t n, char* out, size_t cap, char* err, size_t err_len);
int msm_spm_vocab_size(msm_spm* model);
/* Id of a piece (the unk id when absent). */
int msm_spm_piece_to_id(msm_spm* model, const char* piece);
/* Piece of an id; writes at most cap bytes, returns the full length or -1 for a bad id. */
long msm_spm_id_to_piece(msm_spm* model, int id, char* out, size_t cap);
/* which: 0 unk, 1 bos, 2 eos, 3 pad (-1 when the model has none). */
int msm_spm_special_id(msm_spm* model, int which);
/* Runs the sentencepiece trainer with spm_train-style arguments ("--input=... --model_prefix=...").
 * Returns 0 on success. */
int msm_spm_train(const char* args, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* MSMEDCAP_SPM_BRIDGE_H_ */
