#include "msmedcap/training/communicator.h"

#include <ATen/ATen.h>

#include "msmedcap/training/distributed.h"

namespace msmedcap::training {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  void sum(std::vector<double>&) override {}
  int64_t min(int64_t value) override { return value; }
  void average_gradients(const std::vector<at::Tensor>&, int64_t) override {}
  void broadcast_parameters(const std::vector<at::Tensor>&) override {}
  void barrier() override {}
  losses::Collectives collectives() override { return {}; }
};

class GroupCommunicator final : public Communicator {
 public:
  explicit GroupCommunicator(Distributed& group) : group_(group) {}
  int64_t rank() const override { return group_.rank(); }
  int64_t world_size() const override { return group_.world_size(); }
  void sum(std::vector<double>& values) override {
    auto t = at::tensor(values, at::kDouble);
    group_.all_reduce_sum(t);
    for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
  }
  int64_t min(int64_t value) override {
    auto t = at::tensor({-value}, at::kLong);
    group_.all_reduce_max(t);
    return -t.item<int64_t>();
  }
  void average_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes) override {
    group_.average_gradients(params, bucket_bytes);
  }
  void broadcast_parameters(const std::vector<at::Tensor>& params) override { group_.broadcast_parameters(params); }
  void barrier() override { group_.barrier(); }
  losses::Collectives collectives() override { return group_.collectives(); }

 private:
  Distributed& group_;
};

}  // namespace

std::unique_ptr<Communicator> local_communicator() { return std::make_unique<LocalCommunicator>(); }
std::unique_ptr<Communicator> group_communicator(Distributed& group) {
  return std::make_unique<GroupCommunicator>(group);
}

}  // namespace msmedcap::training
