#ifndef RELAY_BROKER_STORAGE_SEGMENT_SCAN_H_
#define RELAY_BROKER_STORAGE_SEGMENT_SCAN_H_

// Test support: what a segment file holds, read back with RecordReader.
//
//   SegmentScan scan = ScanSegmentFile(path);
//   EXPECT_TRUE(scan.clean_end);
//   EXPECT_EQ(scan.records_end, log->Stats().bytes);  // no reserved space counted

#include <cstdint>
#include <string>

namespace relay::broker {

struct SegmentScan {
  std::string contents;      // the whole file
  uint64_t records = 0;      // intact records from the start
  uint64_t last_start = 0;   // where the last of them starts
  uint64_t records_end = 0;  // where they end (RecordReader::valid_end)
  bool clean_end = false;    // nothing after them, or only zeros (reserved space)
};

// Reads file `path` (a failure is a test failure) and scans its records.
SegmentScan ScanSegmentFile(const std::string& path);

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_SEGMENT_SCAN_H_
