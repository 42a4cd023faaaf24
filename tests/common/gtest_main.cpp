// main() of every test binary: GoogleTest's, with one change. GoogleTest reports the tests
// of a suite whose SetUpTestSuite threw or failed as skipped ("[  SKIPPED ]"), and CTest
// (gtest_discover_tests' SKIP_REGULAR_EXPRESSION, which a project cannot remove) then
// counts them as skipped, not failed: a broken fixture would pass unseen. Here such a
// test prints as failed and the run's summary omits the skipped list, so the test fails
// on its exit code. Every other event prints as GoogleTest prints it.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

namespace {

using testing::TestEventListener;

/// Whether a suite of the run recorded a failure outside its tests (SetUpTestSuite or
/// TearDownTestSuite).
bool suite_failed(const testing::TestSuite* s) { return s && s->ad_hoc_test_result().Failed(); }

class SuiteFailureAsFailure : public TestEventListener {
 public:
  explicit SuiteFailureAsFailure(TestEventListener* inner) : inner_(inner) {}

  void OnTestProgramStart(const testing::UnitTest& u) override { inner_->OnTestProgramStart(u); }
  void OnTestIterationStart(const testing::UnitTest& u, int i) override { inner_->OnTestIterationStart(u, i); }
  void OnEnvironmentsSetUpStart(const testing::UnitTest& u) override { inner_->OnEnvironmentsSetUpStart(u); }
  void OnEnvironmentsSetUpEnd(const testing::UnitTest& u) override { inner_->OnEnvironmentsSetUpEnd(u); }
  void OnTestSuiteStart(const testing::TestSuite& s) override { inner_->OnTestSuiteStart(s); }
  void OnTestStart(const testing::TestInfo& t) override { inner_->OnTestStart(t); }
  void OnTestPartResult(const testing::TestPartResult& r) override { inner_->OnTestPartResult(r); }
  void OnTestEnd(const testing::TestInfo& t) override {
    if (t.result()->Skipped() && suite_failed(testing::UnitTest::GetInstance()->current_test_suite())) {
      std::printf("[  FAILED  ] %s.%s: not run, the suite's SetUpTestSuite failed (above)\n", t.test_suite_name(),
                  t.name());
      std::fflush(stdout);
      return;
    }
    inner_->OnTestEnd(t);
  }
  void OnTestSuiteEnd(const testing::TestSuite& s) override { inner_->OnTestSuiteEnd(s); }
  void OnEnvironmentsTearDownStart(const testing::UnitTest& u) override { inner_->OnEnvironmentsTearDownStart(u); }
  void OnEnvironmentsTearDownEnd(const testing::UnitTest& u) override { inner_->OnEnvironmentsTearDownEnd(u); }
  void OnTestIterationEnd(const testing::UnitTest& u, int i) override {
    for (int k = 0; k < u.total_test_suite_count(); ++k) {
      const testing::TestSuite* s = u.GetTestSuite(k);
      if (suite_failed(s)) {
        std::printf("[  FAILED  ] suite %s failed outside its tests (SetUpTestSuite or TearDownTestSuite)\n",
                    s->name());
        std::fflush(stdout);
        return;  // GoogleTest's summary would list its tests as skipped
      }
    }
    inner_->OnTestIterationEnd(u, i);
  }
  void OnTestProgramEnd(const testing::UnitTest& u) override { inner_->OnTestProgramEnd(u); }

 private:
  std::unique_ptr<TestEventListener> inner_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new SuiteFailureAsFailure(listeners.Release(listeners.default_result_printer())));
  return RUN_ALL_TESTS();
}
