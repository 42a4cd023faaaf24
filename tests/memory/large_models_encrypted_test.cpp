// MobileNetV2 (width 0.35) and ResNet-50 at 32x32, encrypted under a DRAM budget with a
// file tier, checked against the plaintext executor and the plan, and killed mid-model
// (tests/common/large_model_run.h). Ring degree 64 (insecure, tests only) keeps the CI time
// low; the 224x224 runs are long tests (tests/long/).
#include "../common/large_model_run.h"

namespace heinfer::test {
namespace {

class LargeModelsEncrypted : public ::testing::TestWithParam<Case> {};

TEST_P(LargeModelsEncrypted, UnderBudgetWithFileTier) { run_large_model_under_budget(GetParam()); }

INSTANTIATE_TEST_SUITE_P(LargeModels, LargeModelsEncrypted,
                         ::testing::Values(Case{"mobilenet_v2", "0.35", "2M", 2 << 20, 25, "", "64"},
                                           // Random-weight ResNet-50 activations reach ~2^7 (2^12 more
                                           // when masked): Δ = 2^28 keeps the base modulus at 58 bits.
                                           Case{"resnet50", "1.0", "5M", 5 << 20, 30, "--scale-bits 28", "64"}),
                         [](const auto& info) { return info.param.arch; });

}  // namespace
}  // namespace heinfer::test
