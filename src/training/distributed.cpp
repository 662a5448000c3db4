#include "msmedcap/training/distributed.h"

// c10d's headers compile their backends only under these macros; Debian's LibTorch and the
// CUDA wheels are built with Gloo, and NCCL joins where CMake found a CUDA LibTorch.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#ifdef MSMEDCAP_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <regex>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/logging.h"

extern char** environ;

namespace msmedcap::training {
namespace {

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

int64_t env_int(const std::map<std::string, std::string>& env, const std::string& name, int64_t fallback) {
  const auto it = env.find(name);
  if (it == env.end() || it->second.empty()) return fallback;
  static const std::regex kInt("^[0-9]+$");
  MSMEDCAP_CHECK(std::regex_match(it->second, kInt), "environment ", name, ": expected a non-negative integer, got '",
                 it->second, "'");
  return std::stoll(it->second);
}

std::string env_str(const std::map<std::string, std::string>& env, const std::string& name,
                    const std::string& fallback) {
  const auto it = env.find(name);
  return it == env.end() || it->second.empty() ? fallback : it->second;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // "prefix[a-b,c],other" -> prefix + a (keeping a's zero padding).
  const auto comma = nodelist.find(',');
  const auto bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    return nodelist.substr(0, comma);
  }
  const auto close = nodelist.find(']', bracket);
  MSMEDCAP_CHECK(close != std::string::npos, "SLURM_JOB_NODELIST: unbalanced '[' in '", nodelist, "'");
  const std::string range = nodelist.substr(bracket + 1, close - bracket - 1);
  const auto end = range.find_first_of(",-");
  return nodelist.substr(0, bracket) + range.substr(0, end);
}

DistEnv DistEnv::from_environment(const std::map<std::string, std::string>& given) {
  const auto env = given.empty() ? process_environment() : given;
  DistEnv d;
  if (env.count("WORLD_SIZE") && env.count("RANK")) {
    d.source = "torchrun";
    d.rank = env_int(env, "RANK", 0);
    d.world_size = env_int(env, "WORLD_SIZE", 1);
    d.local_rank = env_int(env, "LOCAL_RANK", 0);
    d.master_addr = env_str(env, "MASTER_ADDR", "127.0.0.1");
  } else if (env.count("SLURM_PROCID") && env.count("SLURM_NTASKS")) {
    d.source = "slurm";
    d.rank = env_int(env, "SLURM_PROCID", 0);
    d.world_size = env_int(env, "SLURM_NTASKS", 1);
    d.local_rank = env_int(env, "SLURM_LOCALID", 0);
    const std::string nodes = env_str(env, "SLURM_JOB_NODELIST", env_str(env, "SLURM_NODELIST", "127.0.0.1"));
    d.master_addr = env_str(env, "MASTER_ADDR", first_slurm_host(nodes));
  }
  d.master_port = env_int(env, "MASTER_PORT", 29500);
  MSMEDCAP_CHECK(d.world_size >= 1 && d.rank < d.world_size, "distributed environment (", d.source, "): rank ", d.rank,
                 " outside world size ", d.world_size);
  MSMEDCAP_CHECK(d.master_port > 0 && d.master_port < 65536, "MASTER_PORT: expected 1-65535, got ", d.master_port);
  return d;
}

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
#ifdef MSMEDCAP_WITH_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;

  template <class F>
  void run(F&& f) {
#ifdef MSMEDCAP_WITH_NCCL
    if (nccl) {
      f(*nccl)->wait();
      return;
    }
#endif
    f(*gloo)->wait();
  }
};

Distributed::Distributed(const DistEnv& env, const c10::Device& device, int64_t timeout_s)
    : env_(env), impl_(std::make_unique<Impl>()) {
  const auto timeout = std::chrono::milliseconds(timeout_s * 1000);
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env.master_port);
  store_options.isServer = env.rank == 0;
  store_options.numWorkers = static_cast<size_t>(env.world_size);
  store_options.timeout = timeout;
  core::use_builtin_tcp_store(store_options);
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  } catch (const std::exception& e) {
    MSMEDCAP_FAIL("distributed: cannot reach the rendezvous store at ", env.master_addr, ":", env.master_port,
                  " (rank ", env.rank, " of ", env.world_size, "): ", e.what());
  }
  if (device.is_cuda()) {
#ifdef MSMEDCAP_WITH_NCCL
    backend_ = "nccl";
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, static_cast<int>(env.rank),
                                                              static_cast<int>(env.world_size), options);
#else
    MSMEDCAP_FAIL("distributed: device ", device.str(), " needs NCCL, and this build of msmedcap has none");
#endif
  } else {
    backend_ = "gloo";
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost") {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(env.rank),
                                                              static_cast<int>(env.world_size), options);
  }
  core::log_info("dist", "rank {} of {} ({}, {} at {}:{})", env.rank, env.world_size, env.source, backend_,
                 env.master_addr, env.master_port);
}

Distributed::~Distributed() = default;

void Distributed::all_reduce_sum(at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  impl_->run([&](auto& pg) { return pg.allreduce(v); });
}

void Distributed::all_reduce_max(at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  impl_->run([&](auto& pg) { return pg.allreduce(v, opts); });
}

at::Tensor Distributed::all_gather(const at::Tensor& t) {
  const auto input = t.contiguous();
  std::vector<at::Tensor> in{input};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < env_.world_size; ++r) out[0].push_back(torch::empty_like(input));
  impl_->run([&](auto& pg) { return pg.allgather(out, in); });
  return torch::cat(out[0], 0);
}

void Distributed::broadcast(at::Tensor& t, int64_t root) {
  std::vector<at::Tensor> v{t};
  c10d::BroadcastOptions opts;
  opts.rootRank = static_cast<int>(root);
  impl_->run([&](auto& pg) { return pg.broadcast(v, opts); });
}

void Distributed::barrier() {
  impl_->run([&](auto& pg) { return pg.barrier(); });
}

void Distributed::average_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  while (i < params.size()) {
    // A bucket: consecutive parameters of one dtype and device up to bucket_bytes.
    std::vector<at::Tensor> grads;
    int64_t bytes = 0;
    const auto options = params[i].options();
    while (
        i < params.size() && params[i].scalar_type() == options.dtype().toScalarType() &&
        params[i].device() == options.device() &&
        (grads.empty() || bytes + params[i].numel() * static_cast<int64_t>(params[i].element_size()) <= bucket_bytes)) {
      auto& g = params[i].mutable_grad();
      if (!g.defined()) g = torch::zeros_like(params[i]);
      grads.push_back(g);
      bytes += params[i].numel() * static_cast<int64_t>(params[i].element_size());
      ++i;
    }
    std::vector<at::Tensor> flat_views;
    for (const auto& g : grads) flat_views.push_back(g.reshape({-1}));
    auto flat = torch::cat(flat_views);
    all_reduce_sum(flat);
    flat.div_(static_cast<double>(env_.world_size));
    int64_t offset = 0;
    for (auto& g : grads) {
      g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }
}

void Distributed::broadcast_parameters(const std::vector<at::Tensor>& params) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    auto t = p.detach();
    broadcast(t, 0);
  }
}

namespace {

/// all_gather whose backward sums the incoming gradients over ranks and returns this rank's rows
/// (LAVIS GatherLayer): the loss of every rank reaches the features it used.
struct GatherWithGrad : public torch::autograd::Function<GatherWithGrad> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t group) {
    auto* dist = reinterpret_cast<Distributed*>(group);
    ctx->saved_data["group"] = group;
    ctx->saved_data["rows"] = x.size(0);
    return dist->all_gather(x.detach());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* dist = reinterpret_cast<Distributed*>(ctx->saved_data["group"].toInt());
    const int64_t rows = ctx->saved_data["rows"].toInt();
    auto g = grads[0].contiguous().clone();
    dist->all_reduce_sum(g);
    return {g.narrow(0, dist->rank() * rows, rows), at::Tensor()};
  }
};

}  // namespace

losses::Collectives Distributed::collectives() {
  losses::Collectives c;
  c.rank = env_.rank;
  c.world_size = env_.world_size;
  c.gather = [this](const at::Tensor& t) {
    torch::NoGradGuard no_grad;
    return all_gather(t);
  };
  c.sum = [this](double x) {
    auto t = torch::tensor({x}, torch::kFloat64);
    all_reduce_sum(t);
    return t.item<double>();
  };
  c.gather_with_grad = [this](const at::Tensor& t) {
    return GatherWithGrad::apply(t, reinterpret_cast<int64_t>(this));
  };
  return c;
}

}  // namespace msmedcap::training
