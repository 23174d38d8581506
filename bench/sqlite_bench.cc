// sqlite_bench: what one transaction of the services' shape costs in
// common/store's Database, without the disk: BEGIN IMMEDIATE, a savepoint
// around one INSERT (as TransactionalConsumer runs each event), COMMIT, on
// a database with synchronous=NORMAL in a temp directory (WAL: commits do
// not fsync). Reports transactions/s and CPU µs per transaction, each run
// and the median (bench/README.md#sqlite_bench).
//
//   build/release/bench/sqlite_bench [--transactions=N] [--runs=R]

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/store/sqlite.h"

ABSL_FLAG(int, transactions, 100000, "transactions per run");
ABSL_FLAG(int, runs, 5, "runs, each on a fresh database");

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_transactions);
  const int runs = absl::GetFlag(FLAGS_runs);
  if (n < 1 || runs < 1) {
    std::fprintf(stderr, "sqlite_bench: --transactions and --runs must be at least 1\n");
    return 2;
  }
  char dir_template[] = "/tmp/sqlite_bench.XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::perror("sqlite_bench: mkdtemp");
    return 1;
  }
  std::vector<double> rates, cpus;
  for (int r = 0; r < runs; ++r) {
    const std::string path = absl::StrCat(dir, "/run", r, ".db");
    relay::store::Database::Options options;
    options.synchronous = relay::store::Database::Options::Sync::kNormal;
    auto db = relay::store::Database::Open(path, options);
    if (!db.ok() || !(*db)->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)").ok()) {
      std::fprintf(stderr, "sqlite_bench: cannot set up %s\n", path.c_str());
      return 1;
    }
    const std::string value(200, 'x');
    const absl::Time start = absl::Now();
    const double cpu_start = CpuSeconds();
    for (int i = 0; i < n; ++i) {
      absl::Status s = (*db)->Transaction([&](relay::store::Tx& tx) {
        return tx.Savepoint([&](relay::store::Tx& sp) -> absl::Status {
          absl::StatusOr<relay::store::Statement> insert =
              sp.Prepare("INSERT INTO t (id, v) VALUES (?, ?)");
          if (!insert.ok()) return insert.status();
          if (absl::Status b = insert->BindInt64(1, i); !b.ok()) return b;
          if (absl::Status b = insert->BindBlob(2, value); !b.ok()) return b;
          return insert->Run();
        });
      });
      if (!s.ok()) {
        std::fprintf(stderr, "sqlite_bench: %s\n", s.ToString().c_str());
        return 1;
      }
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    const double cpu = CpuSeconds() - cpu_start;
    rates.push_back(n / seconds);
    cpus.push_back(cpu * 1e6 / n);
    std::printf("run %d/%d: %d transactions in %.2f s: %.0f/s, %.2f us CPU each\n", r + 1, runs, n,
                seconds, rates.back(), cpus.back());
    db->reset();
    std::remove(path.c_str());
    std::remove(absl::StrCat(path, "-wal").c_str());
    std::remove(absl::StrCat(path, "-shm").c_str());
  }
  rmdir(dir);
  std::printf("median of %d: %.0f transactions/s, %.2f us CPU per transaction\n", runs,
              Median(rates), Median(cpus));
  return 0;
}
