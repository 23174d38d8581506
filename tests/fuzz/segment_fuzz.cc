// Fuzz target: recovery of a segment file (broker/storage/segment.h), the
// code that runs on every broker start over whatever the disk holds.
//
// Input: byte 0 chooses the shape of the file.
//  - even: the rest is the file, as is (torn writes, flipped bits, garbage);
//  - odd:  the rest is a list of payloads, each `[u16 little-endian length]
//          [payload]`, written as records with valid CRCs, so that the
//          fuzzer reaches the event parsing behind the CRC check.
// Properties: Recover never fails or crashes on file contents; it indexes a
// dense prefix of records that ReadEvents then reads back, each on its own
// (see Run() for records that are not complete events); the time index is
// ordered.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/storage/env.h"
#include "broker/storage/record.h"
#include "broker/storage/segment.h"
#include "relay/events/v1/event.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace relay::broker {
namespace {

constexpr char kDir[] = "/fuzz";

// A read-only file system of one file: enough for Segment::Recover and
// Segment::ReadEvents, and no disk I/O per input.
class OneFileEnv final : public Env {
 public:
  OneFileEnv(std::string path, std::string contents)
      : path_(std::move(path)), contents_(std::move(contents)) {}

  absl::Status CreateDir(const std::string&) override { return Refused(); }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string&) override {
    return Refused();
  }
  bool IsDirectory(const std::string& path) override { return path == kDir; }
  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string&) override {
    return Refused();
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    if (path != path_) return absl::NotFoundError(path);
    return std::unique_ptr<RandomAccessFile>(new File(&contents_));
  }
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override {
    if (path != path_) return absl::NotFoundError(path);
    return contents_.size();
  }
  absl::Status TruncateFile(const std::string&, uint64_t) override { return Refused(); }
  absl::Status RemoveFile(const std::string&) override { return Refused(); }
  absl::Status RenameFile(const std::string&, const std::string&) override { return Refused(); }
  absl::Status SyncDir(const std::string&) override { return Refused(); }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string&) override {
    return Refused();
  }

 private:
  class File final : public RandomAccessFile {
   public:
    explicit File(const std::string* contents) : contents_(contents) {}
    absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n, char*) const override {
      if (offset > contents_->size()) return absl::OutOfRangeError("read past the end");
      return absl::string_view(*contents_).substr(offset, n);
    }

   private:
    const std::string* contents_;
  };

  static absl::Status Refused() { return absl::UnimplementedError("read-only fuzz env"); }

  const std::string path_;
  const std::string contents_;
};

std::string FileFromInput(absl::string_view input) {
  if (input.empty() || (input[0] & 1) == 0)
    return std::string(input.empty() ? input : input.substr(1));
  std::string file;
  absl::string_view rest = input.substr(1);
  while (rest.size() >= 2) {
    size_t length =
        static_cast<uint8_t>(rest[0]) | (static_cast<size_t>(static_cast<uint8_t>(rest[1])) << 8);
    rest.remove_prefix(2);
    absl::string_view payload = rest.substr(0, length);
    rest.remove_prefix(payload.size());
    AppendRecord(payload, &file);
  }
  return file;
}

void Run(absl::string_view input) {
  const uint64_t base = 0;
  const std::string path = std::string(kDir) + "/" + Segment::FileName(base);
  const std::string contents = FileFromInput(input);
  const size_t file_size = contents.size();
  OneFileEnv env(path, contents);

  std::vector<uint64_t> visited;
  Segment::Recovery recovery;
  absl::StatusOr<std::unique_ptr<Segment>> recovered = Segment::Recover(
      &env, kDir, base, std::numeric_limits<uint64_t>::max(),
      [&visited](const RecordMeta& meta) { visited.push_back(meta.offset); }, &recovery);
  FUZZ_CHECK(recovered.ok());  // only an unreadable file is an error
  const Segment& segment = **recovered;

  FUZZ_CHECK(recovery.file_bytes == file_size);
  FUZZ_CHECK(recovery.valid_bytes == segment.bytes());
  FUZZ_CHECK(recovery.valid_bytes <= recovery.file_bytes);
  FUZZ_CHECK(recovery.valid_bytes + recovery.zero_tail_bytes <= recovery.file_bytes);
  // Clean: the records, then only reserved space (zeros).
  FUZZ_CHECK(recovery.problem.empty() ==
             (recovery.valid_bytes + recovery.zero_tail_bytes == recovery.file_bytes));
  FUZZ_CHECK(contents.find_first_not_of('\0', file_size - recovery.zero_tail_bytes) ==
             std::string::npos);
  FUZZ_CHECK(segment.base_offset() == base);
  FUZZ_CHECK(visited.size() == segment.records());
  for (size_t i = 0; i < visited.size(); ++i) FUZZ_CHECK(visited[i] == base + i);
  if (segment.records() == 0) {
    FUZZ_CHECK(segment.bytes() == 0);
    return;
  }

  // Every indexed record whose payload is an Event reads back, one by one
  // and all at once. Recovery checks records with a fast parser of three
  // fields, so a record with a valid CRC whose payload is not a complete
  // Event (a writer bug, or corruption that matches the CRC) is indexed too:
  // reading it is DATA_LOSS for that offset alone, never for its neighbours,
  // so a reader can step over it. (Refusing it in recovery instead would cut
  // the tail of the last segment there, good records after it included.)
  bool all_parse = true;
  absl::Time previous = absl::InfinitePast();
  for (uint64_t offset = base; offset < segment.end_offset(); ++offset) {
    const uint64_t start = segment.RecordStart(offset);
    const uint64_t end = segment.RecordEnd(offset);
    FUZZ_CHECK(start + kRecordHeaderBytes <= end && end <= segment.bytes());
    const absl::string_view payload = absl::string_view(contents).substr(
        start + kRecordHeaderBytes, end - start - kRecordHeaderBytes);
    events::v1::Event expected;
    const bool parses = expected.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    all_parse = all_parse && parses;

    std::vector<events::v1::Event> one;
    absl::Status read = segment.ReadEvents(offset, 1, start, end, "t", &one);
    if (parses) {
      FUZZ_CHECK(read.ok());
      FUZZ_CHECK(one.size() == 1 && one[0].offset() == offset && one[0].topic() == "t");
    } else {
      FUZZ_CHECK(read.code() == absl::StatusCode::kDataLoss);
      FUZZ_CHECK(one.empty());
    }
    const absl::Time t = segment.TimeOf(offset);
    FUZZ_CHECK(t >= previous);
    FUZZ_CHECK(segment.OffsetForTime(t) <= offset);
    previous = t;
  }
  std::vector<events::v1::Event> all;
  absl::Status read = segment.ReadEvents(base, segment.records(), segment.RecordStart(base),
                                         segment.bytes(), "t", &all);
  FUZZ_CHECK(read.ok() == all_parse);
  if (all_parse) FUZZ_CHECK(all.size() == segment.records());
  FUZZ_CHECK(segment.first_time() <= segment.last_time());
  FUZZ_CHECK(segment.OffsetForTime(absl::InfiniteFuture()) == segment.end_offset());
}

}  // namespace
}  // namespace relay::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relay::broker::Run(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
