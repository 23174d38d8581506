// Writes the seed corpus of the fuzz targets: a few valid inputs each, made
// with the real writers, so that fuzzing starts from inputs that reach deep.
//
//   build/dev/tests/fuzz/relay_fuzz_seeds tests/fuzz/corpus
//
// Deterministic: rerunning it rewrites the same files (commit them).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "broker/group_store.h"
#include "broker/storage/record.h"
#include "relay/broker/v1/broker.pb.h"
#include "relay/events/v1/event.pb.h"

namespace relay::broker {
namespace {

namespace fs = std::filesystem;
using ::relay::events::v1::Event;

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out << bytes;
}

Event MakeEvent(uint64_t offset, bool with_headers) {
  Event e;
  e.set_id(absl::StrCat("evt-", offset));
  e.set_type("order.created");
  e.set_key(absl::StrCat("order-", offset % 3));
  e.set_source("order-service");
  if (with_headers) (*e.mutable_headers())["correlation_id"] = e.key();
  e.set_data(std::string(8 + offset % 5, 'd'));
  e.set_offset(offset);
  ToTimestamp(absl::FromUnixSeconds(1700000000) + absl::Milliseconds(offset), e.mutable_time());
  ToTimestamp(absl::FromUnixSeconds(1700000000) + absl::Milliseconds(10 * offset),
              e.mutable_publish_time());
  return e;
}

std::string Segment(int events) {
  std::string file;
  for (int i = 0; i < events; ++i) (void)AppendEventRecord(MakeEvent(i, i % 2 == 0), &file);
  return file;
}

// segment_fuzz's odd-byte form: [u16 length][payload]... framed by the target.
std::string Payloads(int events) {
  std::string out(1, '\x01');
  for (int i = 0; i < events; ++i) {
    std::string p = MakeEvent(i, i % 2 == 1).SerializeAsString();
    out.push_back(static_cast<char>(p.size() & 0xff));
    out.push_back(static_cast<char>(p.size() >> 8));
    out += p;
  }
  return out;
}

void WriteAll(const fs::path& root) {
  Write(root / "record_fuzz", "one_record", Segment(1));
  Write(root / "record_fuzz", "three_records", Segment(3));
  Write(root / "record_fuzz", "torn_tail", Segment(2).substr(0, Segment(2).size() - 5));
  Write(root / "record_fuzz", "event_payload", MakeEvent(7, true).SerializeAsString());

  Write(root / "segment_fuzz", "raw_segment", std::string(1, '\0') + Segment(4));
  Write(root / "segment_fuzz", "payloads", Payloads(4));
  Write(root / "segment_fuzz", "empty", "");

  GroupCheckpoint c;
  c.set_topic("orders");
  c.set_group("payment-service");
  c.set_created_unix_micros(1700000000000000);
  Write(root / "checkpoint_fuzz", "new_group", c.SerializeAsString());
  c.set_committed_offset(100);
  (*c.mutable_attempts())[100] = 2;
  (*c.mutable_attempts())[103] = 3;
  (*c.mutable_attempts())[104] = 1;
  c.add_types("order.created");
  c.add_types("order.cancelled");
  c.set_dead_lettered(4);
  GroupCheckpoint old_broker = c;  // acked offsets one by one
  for (uint64_t o : {101, 102, 105, 130}) old_broker.add_acked_above(o);
  Write(root / "checkpoint_fuzz", "busy_group", old_broker.SerializeAsString());
  // Acked runs as (gap, length) from the committed offset: 101-102, 105, 130.
  for (uint64_t v : {1, 2, 2, 1, 24, 1}) c.add_acked_runs(v);
  c.set_skipped_offsets(3);
  Write(root / "checkpoint_fuzz", "busy_group_runs", c.SerializeAsString());

  v1::PublishRequest publish;
  publish.set_topic("orders");
  publish.set_request_id(7);
  for (uint64_t i = 0; i < 2; ++i) {
    Event e = MakeEvent(i, true);
    e.clear_offset();
    e.clear_publish_time();
    *publish.add_events() = e;
  }
  Write(root / "envelope_fuzz", "publish", publish.SerializeAsString());
  publish.mutable_events(1)->set_topic("payments");
  Write(root / "envelope_fuzz", "publish_wrong_topic", publish.SerializeAsString());

  v1::SubscribeRequest subscribe;
  v1::SubscribeRequest::Open* open = subscribe.mutable_open();
  open->set_topic("orders");
  open->set_group("inventory-service");
  open->add_types("order.created");
  open->set_max_in_flight(100);
  open->mutable_ack_deadline()->set_seconds(30);
  open->set_member_name("host/1234");
  open->mutable_start()->set_earliest(true);
  Write(root / "envelope_fuzz", "subscribe", subscribe.SerializeAsString());
}

}  // namespace
}  // namespace relay::broker

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus root, e.g. tests/fuzz/corpus>\n", argv[0]);
    return 2;
  }
  relay::broker::WriteAll(argv[1]);
  return 0;
}
