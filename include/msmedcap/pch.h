#pragma once
// Precompiled header for the library and its test/CLI targets: the heavy LibTorch headers are
// parsed once per build instead of once per source file (about a minute each on 2 cores).
#include <ATen/ATen.h>
#include <torch/nn.h>
#include <torch/optim.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>
