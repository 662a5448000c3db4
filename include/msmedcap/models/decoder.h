#pragma once
/// Decoder LLMs that take `inputs_embeds` (the visual prefix + token embeddings), a padding
/// mask, optional positions and an explicit KV cache; mirror transformers OPTForCausalLM,
/// LlamaForCausalLM and GPT2LMHeadModel with their HF parameter names.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <memory>
#include <optional>
#include <vector>

#include "msmedcap/config/model_config.h"
#include "msmedcap/models/packed_linear.h"

namespace msmedcap::models {

/// Per-layer keys and values of earlier positions, [B, Hkv, T, Dh] each (CTranslate2-style named
/// cache). Appends write in place into buffers sized by reserve() (or grown by doubling), so a
/// decoding step copies only its new position, not the whole history as concatenation would.
/// While autograd records (a key or value requires grad) appends concatenate instead, so no
/// tensor saved for backward is overwritten.
class KvCache {
 public:
  /// Positions to allocate room for at the first append (prefix + new tokens); 0 = as needed.
  void reserve(int64_t positions) { reserve_ = positions; }
  /// Positions already cached (0 when empty).
  int64_t length() const { return lengths_.empty() ? 0 : lengths_[0]; }
  /// Appends this step's k/v [B, Hkv, t, Dh] for `layer` and returns views of the full k/v.
  std::pair<torch::Tensor, torch::Tensor> append(size_t layer, const torch::Tensor& k, const torch::Tensor& v);
  /// Keeps only the given batch rows, in that order (beam search reordering).
  void select(const torch::Tensor& rows);
  /// Repeats each batch row `times` times in place (row b becomes rows b*times .. b*times+times-1):
  /// a prefix computed once for B rows serves B*times beams.
  void repeat_interleave(int64_t times);

 private:
  std::vector<torch::Tensor> keys_, values_;  // [B, Hkv, capacity, Dh]
  std::vector<int64_t> lengths_;
  int64_t reserve_ = 0;
};

/// Common interface of the decoder families.
class DecoderLM : public torch::nn::Module {
 public:
  /// Token embeddings of ids: [B, T] -> [B, T, E].
  virtual torch::Tensor embed(const torch::Tensor& ids) = 0;
  /// embeds: [B, T, E]; mask: [B, past + T] (1 = token, 0 = padding); positions: [B, T]
  /// (undefined = derived as HF does: OPT from the mask, others past..past+T-1);
  /// cache: extended in place when given; logits_last: the LM head runs on the last n positions
  /// only (0 = all; generation needs 1, a loss only the positions it scores). Returns logits
  /// [B, T or n, V].
  virtual torch::Tensor forward(const torch::Tensor& embeds, const torch::Tensor& mask,
                                const torch::Tensor& positions = {}, KvCache* cache = nullptr,
                                int64_t logits_last = 0) = 0;
  /// Width of the embeddings forward() takes (what the visual projection must output).
  virtual int64_t input_width() const = 0;
  /// True when the family always derives positions from the mask (OPT); generation then passes
  /// none, and passes cumsum(mask) - 1 positions to the others, as HF generate does.
  virtual bool positions_from_mask() const { return false; }
  /// Decoding on the CPU: every linear layer and the LM head (the token table when tied) read a
  /// copy of their weights in `format` from now on (packed_linear.h) wherever no gradient is
  /// recorded. For inference: the copies do not follow later changes of the weights.
  virtual void pack_weights(WeightFormat format) = 0;
  /// The format pack_weights() was given (unset: products read the weights themselves).
  virtual std::optional<WeightFormat> packed_format() const = 0;
};

/// Builds the decoder named by cfg.arch (opt, llama, gpt2).
std::shared_ptr<DecoderLM> build_decoder(const config::DecoderConfig& cfg);

/// Additive attention bias [B, 1, T, past + T] for causal attention over `mask`:
/// 0 where attention is allowed, the dtype's lowest value elsewhere.
torch::Tensor causal_padding_bias(const torch::Tensor& mask, int64_t new_tokens, c10::ScalarType dtype);

}  // namespace msmedcap::models
