#ifndef RELAY_TESTS_TESTING_TEMP_DIR_H_
#define RELAY_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace relay::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object goes away. Not thread-safe.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_TEMP_DIR_H_
