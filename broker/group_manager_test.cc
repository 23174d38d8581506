// GroupManager on a real file log and checkpoint store (temp directories).

#include "broker/group_manager.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "broker/group_store.h"
#include "broker/storage/file_event_log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/storage/v1/storage.pb.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::broker {
namespace {

using ::relay::broker::storage::v1::GroupCheckpoint;
using ::relay::events::v1::Event;
using ::relay::testing::IsOk;

absl::Status AppendAndWait(EventLog* log, const std::string& topic, int n) {
  std::vector<Event> events(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    events[static_cast<size_t>(i)].set_id(absl::StrCat(topic, "-", i));
    events[static_cast<size_t>(i)].set_type("order.created");
    events[static_cast<size_t>(i)].set_data(std::string(200, 'd'));
  }
  absl::Notification done;
  absl::Status out;
  log->Append(topic, std::move(events), [&](absl::StatusOr<std::vector<AppendResult>> r) {
    out = r.status();
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

// After a restart, retention must know the loaded groups' floors before its
// first pass, not only from the first checkpoint pass (checkpoint_interval
// after Start()): a pass before that took the topic for one without groups
// and deleted, by size, events a group had not read.
TEST(GroupManagerTest, LoadedGroupsHoldRetentionBackBeforeTheFirstCheckpointPass) {
  relay::testing::TempDir dir;
  FileEventLog::Options options;
  options.data_dir = dir.Join("data");
  options.segment_bytes = 4096;
  options.retention_bytes = 4096;                           // far less than the topic holds
  options.retention_check_interval = absl::ZeroDuration();  // passes by hand
  {
    absl::StatusOr<std::unique_ptr<FileEventLog>> log = FileEventLog::Open(options);
    ASSERT_THAT(log, IsOk());
    ASSERT_THAT(AppendAndWait(log->get(), "orders", 100), IsOk());
    ASSERT_THAT((*log)->Close(), IsOk());
  }
  FileGroupStore store(dir.Join("groups"));
  GroupCheckpoint slow;
  slow.set_topic("orders");
  slow.set_group("slow");
  slow.set_committed_offset(40);  // has read forty events
  ASSERT_THAT(store.Save(slow), IsOk());

  // The broker starts again: log first (its retention may run from then
  // on), then the groups.
  absl::StatusOr<std::unique_ptr<FileEventLog>> log = FileEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  GroupManager::Options group_options;
  group_options.checkpoint_interval = absl::Hours(1);
  GroupManager groups(group_options, log->get(), &store);
  ASSERT_THAT(groups.Load(), IsOk());
  ASSERT_THAT((*log)->RunRetentionOnce(), IsOk());
  // Segments below offset 40 may go; nothing the group has not read.
  EXPECT_LE((*log)->FirstOffset("orders"), 40u);
  EXPECT_GT((*log)->FirstOffset("orders"), 0u);  // retention did run
  EXPECT_EQ((*log)->DurableEnd("orders"), 100u);
}

}  // namespace
}  // namespace relay::broker
