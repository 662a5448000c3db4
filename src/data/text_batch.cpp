#include "msmedcap/data/text_batch.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "msmedcap/core/check.h"

namespace msmedcap::data {
namespace {

TextBatch pad_rows(const std::vector<std::vector<int64_t>>& rows, int64_t pad) {
  size_t width = 1;
  for (const auto& r : rows) width = std::max(width, r.size());
  const auto n = static_cast<int64_t>(rows.size());
  TextBatch out;
  out.ids = at::full({n, static_cast<int64_t>(width)}, pad, at::kLong);
  out.mask = at::zeros({n, static_cast<int64_t>(width)}, at::kLong);
  auto* ids = out.ids.data_ptr<int64_t>();
  auto* mask = out.mask.data_ptr<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy(rows[i].begin(), rows[i].end(), ids + i * width);
    std::fill(mask + i * width, mask + i * width + rows[i].size(), 1);
  }
  return out;
}

int64_t pad_of(const TextTokenizer& tokenizer) { return tokenizer.pad_id() >= 0 ? tokenizer.pad_id() : 0; }

}  // namespace

TextBatch qformer_text_batch(const TextTokenizer& tokenizer, const std::vector<std::string>& texts, int64_t max_len) {
  MSMEDCAP_CHECK(max_len >= 2, "qformer text: max_len must be >= 2, got ", max_len);
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  for (const auto& text : texts) {
    auto ids = tokenizer.encode(text, true);
    if (static_cast<int64_t>(ids.size()) > max_len) {
      const int64_t sep = ids.back();
      ids.resize(static_cast<size_t>(max_len - 1));
      ids.push_back(sep);
    }
    rows.push_back(std::move(ids));
  }
  return pad_rows(rows, pad_of(tokenizer));
}

TextBatch decoder_text_batch(const TextTokenizer& tokenizer, const std::vector<std::string>& texts,
                             const std::string& prompt, const std::string& eos_text, int64_t max_len) {
  MSMEDCAP_CHECK(max_len >= 1, "decoder text: max_len must be >= 1, got ", max_len);
  // LAVIS masks prompt_length = len(tokenizer(prompt).input_ids) leading tokens, and only when
  // there is a prompt (the bos is then masked with it).
  const int64_t prompt_len = prompt.empty() ? 0 : static_cast<int64_t>(tokenizer.encode(prompt, true).size());
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  for (const auto& text : texts) {
    auto ids = tokenizer.encode(prompt + text + eos_text, true);
    if (static_cast<int64_t>(ids.size()) > max_len) ids.resize(static_cast<size_t>(max_len));
    rows.push_back(std::move(ids));
  }
  TextBatch out = pad_rows(rows, pad_of(tokenizer));
  out.prompt_lengths.assign(texts.size(), prompt_len);
  return out;
}

}  // namespace msmedcap::data
