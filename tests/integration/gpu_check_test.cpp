// scripts/gpu_check.sh --cpu, as CI runs it: the GPU check's every step on the CPU against
// Debian's LibTorch (golden tests through MSMEDCAP_TEST_DEVICE, one training step per stage, the
// two-process test, the medium benchmarks), and its JSON report.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "test_utils.h"

namespace msmedcap {
namespace {

TEST(GpuCheck, CpuDryRunPassesEveryStepAndReportsThem) {
  testing::TempDir dir;
  const std::string build = std::filesystem::path(MSMEDCAP_BINARY).parent_path().string();
  // A generous time budget: on a loaded 2-core machine the default (sized for the GPU's 9-minute
  // call) could skip the last steps.
  const auto r = testing::run_command("OUT=" + dir.path() + " BUILD_DIR=" + build + " GPU_CHECK_SECONDS=3000 " +
                                      MSMEDCAP_SOURCE_DIR + "/scripts/gpu_check.sh --cpu");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << testing::read_text(dir.file("gpu_check.log")).substr(0, 4000);
  const auto report = nlohmann::json::parse(testing::read_text(dir.file("gpu_check.json")));
  EXPECT_EQ(report["mode"], "cpu");
  EXPECT_EQ(report["failed"], 0);
  std::map<std::string, nlohmann::json> steps;
  for (const auto& s : report["steps"]) steps[s["step"].get<std::string>()] = s;
  for (const char* name : {"build", "golden_fp32", "golden_bf16", "train_stage1_clip_fp32", "train_stage1_sam_fp32",
                           "train_stage2_fp32", "distributed", "bench_stage2", "bench_caption"}) {
    ASSERT_TRUE(steps.count(name)) << name << " missing from " << report.dump();
    // The two-process test trains on synthetic images: a build without OpenCV (the core build the
    // GPU machine gets) does not have it, and the step says so rather than passing on nothing.
    const bool without_test = std::string(name) == "distributed" && !core::built_with(core::Component::kOpenCv);
    EXPECT_EQ(steps[name]["status"], without_test ? "skipped" : "ok") << steps[name].dump();
  }
  if (!core::built_with(core::Component::kOpenCv))
    EXPECT_NE(steps["distributed"]["detail"]["why"].get<std::string>().find("components: "), std::string::npos);
  // Every model and generation golden test ran (16 float32, 5 bf16), none failed.
  EXPECT_GE(steps["golden_fp32"]["detail"]["tests"].get<int>(), 16);
  EXPECT_EQ(steps["golden_fp32"]["detail"]["failures"].get<int>(), 0);
  EXPECT_EQ(steps["golden_bf16"]["detail"]["tests"].get<int>(), 5);  // the half-bytes check and 4 fixtures' outputs
  EXPECT_GT(std::stod(steps["train_stage2_fp32"]["detail"]["loss"].get<std::string>()), 0.0);
  EXPECT_GT(steps["bench_stage2"]["detail"]["images_per_s"].get<double>(), 0.0);
  EXPECT_GT(steps["bench_stage2"]["detail"]["mfu"].get<double>(), 0.0);
  EXPECT_GT(steps["bench_caption"]["detail"]["tokens_per_s"].get<double>(), 0.0);
}

}  // namespace
}  // namespace msmedcap
