#pragma once
// Tensor comparisons for tests, in one place: shapes first, then every element within
// atol + rtol * |expected| (numpy.allclose's rule), compared in float64 on the CPU.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace msmedcap::testing {

/// Adds a failure (the test goes on) unless `actual` and `expected` have the same shape and
/// |actual - expected| <= atol + rtol * |expected| everywhere. The message names `what`, the
/// largest error and where it is. Returns the largest absolute error (infinity on a shape
/// mismatch or an undefined tensor).
inline double expect_tensor_near(const at::Tensor& actual, const at::Tensor& expected, double atol, double rtol = 0,
                                 const std::string& what = "") {
  if (!actual.defined() || !expected.defined()) {
    ADD_FAILURE() << what << ": " << (actual.defined() ? "expected" : "actual") << " tensor is undefined";
    return std::numeric_limits<double>::infinity();
  }
  if (actual.sizes() != expected.sizes()) {
    ADD_FAILURE() << what << ": shape " << actual.sizes() << ", expected " << expected.sizes();
    return std::numeric_limits<double>::infinity();
  }
  const auto a = actual.detach().to(at::kCPU, at::kDouble), e = expected.detach().to(at::kCPU, at::kDouble);
  const auto error = (a - e).abs();
  if (error.numel() == 0) return 0;
  const auto excess = error - (atol + rtol * e.abs());
  const double worst = error.max().item<double>();
  if (excess.max().item<double>() > 0 || error.isnan().any().item<bool>()) {
    const int64_t at = excess.nan_to_num(std::numeric_limits<double>::infinity()).flatten().argmax().item<int64_t>();
    std::ostringstream where;
    int64_t rest = at;
    for (int64_t d = actual.dim() - 1; d >= 0; --d) {
      where.str(std::to_string(rest % actual.size(d)) + (where.str().empty() ? "" : ", ") + where.str());
      rest /= actual.size(d);
    }
    ADD_FAILURE() << what << ": max error " << worst << " > " << atol << " + " << rtol << " * |expected|; worst at ["
                  << where.str() << "]: " << a.flatten()[at].item<double>() << " vs " << e.flatten()[at].item<double>();
  }
  return worst;
}

}  // namespace msmedcap::testing
