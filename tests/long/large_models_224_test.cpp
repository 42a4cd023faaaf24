// Long tests (CTest label `long`, not in scripts/test.sh; run by scripts/long_tests.sh):
// MobileNetV2 (width 0.35) and ResNet-50 at 224x224, encrypted end to end under a DRAM
// budget with a file tier, checked against the plaintext executor and replayed against
// the plan layer by layer (levels, ciphertext counts, client rounds, stored bytes), and
// killed mid-model (tests/common/large_model_run.h). Ring degree 16 (insecure, tests only):
// the ~10^6 ciphertexts of a 224x224 layer are 1 KiB each; the run time is then the
// per-ciphertext work of the rounds and the multiply-accumulates (tens of minutes on 2
// cores), not the ring arithmetic.
#include "../common/large_model_run.h"

namespace heinfer::test {
namespace {

class LargeModelsAt224 : public ::testing::TestWithParam<Case> {};

TEST_P(LargeModelsAt224, UnderBudgetWithFileTier) { run_large_model_under_budget(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Long, LargeModelsAt224,
                         // At 224x224 up to ~3·10^6 ciphertexts are alive at once, each with a
                         // few hundred bytes of bookkeeping beside its data: ResNet-50 peaked at
                         // 1,111 MiB RssAnon with a 64 MiB budget (2026-12-02).
                         ::testing::Values(Case{"mobilenet_v2", "0.35", "16M", 16 << 20, 3, "", "16", "224",
                                                std::int64_t{2} << 30},
                                           Case{"resnet50", "1.0", "64M", 64 << 20, 3, "--scale-bits 28", "16", "224",
                                                std::int64_t{2} << 30}),
                         [](const auto& info) { return info.param.arch; });

}  // namespace
}  // namespace heinfer::test
