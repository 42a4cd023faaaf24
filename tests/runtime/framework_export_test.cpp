// Models as PyTorch exports them, run by the plaintext executor against PyTorch
// (tests/common/framework_export.h): every idiom at opsets 13 and 17, and the torchvision
// classifiers whose graphs carry the constructs beyond Conv/BN/ReLU (shape arithmetic,
// channel shuffle, squeeze-and-excitation gates, Sigmoid/HardSigmoid/HardSwish, products of
// activations, ReduceMean); the idioms and ShuffleNet also encrypted. The other classifiers, and these at the other opset, run in
// the long tests.
#include "../common/framework_export.h"

namespace heinfer {
namespace {

std::vector<test::ExportCase> cases() {
  std::vector<test::ExportCase> v;
  for (const char* idiom : {"view", "pad", "silu", "shuffle", "refl", "hswish", "upsample", "gelu"}) {
    for (int opset : {13, 17}) {
      const bool encrypted = true;
      v.push_back({"export_idioms.py", std::string("--idiom ") + idiom, opset,
                   std::string(idiom) + "_opset" + std::to_string(opset) + (encrypted ? "_encrypted" : ""), encrypted});
    }
  }
  v.push_back({"export_torchvision.py", "--arch shufflenet_v2_x1_0 --resolution 32", 13, "shufflenet_v2_opset13_encrypted", true});
  v.push_back({"export_torchvision.py", "--arch mobilenet_v3_small --resolution 32", 17, "mobilenet_v3_small_opset17"});
  v.push_back({"export_torchvision.py", "--arch efficientnet_b0 --resolution 32", 13, "efficientnet_b0_opset13"});
  v.push_back({"export_torchvision.py", "--arch mnasnet1_0 --resolution 32", 17, "mnasnet1_0_opset17"});
  return v;
}

class FrameworkExport : public ::testing::TestWithParam<test::ExportCase> {};

TEST_P(FrameworkExport, PlaintextMatchesPyTorch) { test::expect_export_matches_pytorch(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Exports, FrameworkExport, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<test::ExportCase>& i) { return i.param.name; });

}  // namespace
}  // namespace heinfer
