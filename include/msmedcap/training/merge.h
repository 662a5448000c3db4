#pragma once
/// The mixed-semantic merge of MSMedCap (docs/MODEL.md, "Training stages", step 3,
/// transform.ipynb): two stage-1 results, one per branch, become one set of weights for stage 2.

#include <string>

#include "msmedcap/io/tensor_store.h"

namespace msmedcap::training {

/// The CLIP stage-1 tensors with every SAM-branch tensor (`sam_qformer.*`, `sam_query_tokens`
/// and the SAM stage-1 heads `sam_*`) taken from the SAM stage-1 tensors; the CLIP side's own
/// `sam_*` tensors, if any, are replaced. `clip_name` / `sam_name` name the sources in errors.
/// Throws when the CLIP side has no `qformer.` tensor or the SAM side no `sam_qformer.` tensor.
io::StateDict merge_stage1(const io::StateDict& clip, const io::StateDict& sam, const std::string& clip_name,
                           const std::string& sam_name);

}  // namespace msmedcap::training
