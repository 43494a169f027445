#include "libs/metrics/exposer.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/metrics/scrape.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace switchboard::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsExposerTest, ServesTheRegistryOnAFreePort) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("test_events_total")
      .Help("Events seen by the test.")
      .Register(*registry)
      .Add({{"kind", "a"}})
      .Increment(3);

  absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
      MetricsExposer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  ASSERT_GT((*exposer)->port(), 0);

  absl::StatusOr<std::string> text =
      ScrapeMetrics("127.0.0.1", (*exposer)->port());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("# HELP test_events_total Events seen by the "
                               "test.\n# TYPE test_events_total counter\n"
                               "test_events_total{kind=\"a\"} 3\n"));
}

TEST(MetricsExposerTest, KeepsTheRegistryAlive) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("kept_total")
      .Help("Kept.")
      .Register(*registry)
      .Add({})
      .Increment();
  absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
      MetricsExposer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  registry.reset();

  absl::StatusOr<std::string> text =
      ScrapeMetrics("127.0.0.1", (*exposer)->port());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("\nkept_total 1\n"));
}

TEST(MetricsExposerTest, PortInUseIsAnError) {
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<MetricsExposer>> first =
      MetricsExposer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(first.ok()) << first.status();

  absl::StatusOr<std::unique_ptr<MetricsExposer>> second =
      MetricsExposer::Start("127.0.0.1", (*first)->port(), registry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable)
      << second.status();

  // The first one still serves.
  EXPECT_TRUE(ScrapeMetrics("127.0.0.1", (*first)->port()).ok());
}

TEST(MetricsExposerTest, AddressNotOfThisMachineIsAnError) {
  // 192.0.2.0/24 is reserved for documentation; binding to it fails at once.
  absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
      MetricsExposer::Start("192.0.2.1", 0,
                            std::make_shared<prometheus::Registry>());
  EXPECT_EQ(exposer.status().code(), absl::StatusCode::kUnavailable)
      << exposer.status();
}

TEST(MetricsExposerTest, PortOutOfRangeIsInvalid) {
  auto registry = std::make_shared<prometheus::Registry>();
  EXPECT_EQ(MetricsExposer::Start("127.0.0.1", -1, registry).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      MetricsExposer::Start("127.0.0.1", 65536, registry).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ScrapeMetricsTest, NothingListeningIsUnavailable) {
  int port;
  {
    absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
        MetricsExposer::Start("127.0.0.1", 0,
                              std::make_shared<prometheus::Registry>());
    ASSERT_TRUE(exposer.ok()) << exposer.status();
    port = (*exposer)->port();
  }
  EXPECT_EQ(ScrapeMetrics("127.0.0.1", port).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace switchboard::metrics
