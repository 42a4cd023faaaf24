// Every image classifier of Debian's torchvision 0.14 at opsets 13 and 17, exported with
// seeded weights and a dynamic batch at its smallest input side (tools/export_torchvision.py
// --list: 32, alexnet and vgg 224, inception_v3 75), loaded and run by the plaintext
// executor against PyTorch (tests/common/framework_export.h); eleven of them also encrypted
// end to end at 32x32. About 12 minutes on 2 cores.
#include "../common/framework_export.h"

namespace heinfer {
namespace {

std::vector<test::ExportCase> cases() {
  const std::vector<std::pair<std::string, int>> archs = {
      {"alexnet", 224},        {"vgg11_bn", 224},         {"resnet18", 32},      {"resnet50", 32},
      {"resnext50_32x4d", 32}, {"wide_resnet50_2", 32},   {"densenet121", 32},   {"squeezenet1_1", 32},
      {"shufflenet_v2_x1_0", 32}, {"mobilenet_v2", 32},   {"mobilenet_v3_small", 32}, {"mobilenet_v3_large", 32},
      {"mnasnet1_0", 32},      {"efficientnet_b0", 32},   {"regnet_y_400mf", 32}, {"googlenet", 32},
      {"inception_v3", 75}};
  std::vector<test::ExportCase> v;
  for (const auto& [arch, side] : archs) {
    for (int opset : {13, 17}) {
      v.push_back({"export_torchvision.py", "--arch " + arch + " --resolution " + std::to_string(side), opset,
                   arch + "_opset" + std::to_string(opset)});
    }
  }
  // Encrypted end to end at 32x32 (ring degree 64): the classifiers whose ops all run
  // encrypted today, 8 images each (regnet's and efficientnet's Sigmoid gates as unmasked
  // rounds; efficientnet and the MobileNetV3s with refresh points, plan/refresh_rounds.h).
  for (const char* arch : {"resnet18", "squeezenet1_1", "densenet121", "googlenet", "resnext50_32x4d",
                           "shufflenet_v2_x1_0", "mnasnet1_0", "regnet_y_400mf", "efficientnet_b0",
                           "mobilenet_v3_small", "mobilenet_v3_large"}) {
    v.push_back({"export_torchvision.py", std::string("--arch ") + arch + " --resolution 32", 13,
                 std::string(arch) + "_opset13_encrypted", true});
  }
  return v;
}

class TorchvisionZoo : public ::testing::TestWithParam<test::ExportCase> {};

TEST_P(TorchvisionZoo, PlaintextMatchesPyTorch) { test::expect_export_matches_pytorch(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Classifiers, TorchvisionZoo, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<test::ExportCase>& i) { return i.param.name; });

}  // namespace
}  // namespace heinfer
