#include "msmedcap/models/checkpointing.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

namespace msmedcap::models {
namespace {

/// Keeps the block alive until the backward has run it again.
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(Block b) : block(std::move(b)) {}
  Block block;
};

struct Checkpoint : public torch::autograd::Function<Checkpoint> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const c10::intrusive_ptr<BlockHolder>& holder) {
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    torch::NoGradGuard no_grad;
    return holder->block(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor out;
    {
      torch::AutoGradMode grad(true);
      out = holder->block(x);
    }
    torch::autograd::backward({out}, {grads[0]});
    return {x.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed(const Block& block, const torch::Tensor& x) {
  return Checkpoint::apply(x, c10::make_intrusive<BlockHolder>(block));
}

}  // namespace msmedcap::models
