#include "broker/storage/segment_scan.h"

#include "absl/strings/string_view.h"
#include "broker/storage/env.h"
#include "broker/storage/record.h"
#include "gtest/gtest.h"

namespace relay::broker {

SegmentScan ScanSegmentFile(const std::string& path) {
  SegmentScan scan;
  const absl::Status status = ReadFileToString(Env::Default(), path, &scan.contents);
  EXPECT_TRUE(status.ok()) << status;
  RecordReader reader(scan.contents);
  absl::string_view payload;
  while (reader.Next(&payload)) ++scan.records;
  scan.last_start = reader.record_start();
  scan.records_end = reader.valid_end();
  scan.clean_end = reader.clean_end();
  return scan;
}

}  // namespace relay::broker
