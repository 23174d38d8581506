#include "tests/testing/dev_pki.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace relay::testing {
namespace {

// `arg` in single quotes for sh.
std::string Quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

absl::Status RunDevPki(const std::string& dir, const std::vector<std::string>& args) {
  std::string command = absl::StrCat(Quote(RELAY_DEV_PKI), " --dir ", Quote(dir));
  for (const std::string& a : args) absl::StrAppend(&command, " ", Quote(a));
  absl::StrAppend(&command, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run ", command));
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat(command, " exited with ", WEXITSTATUS(status), ": ", output));
  }
  return absl::OkStatus();
}

TlsFiles PkiFiles(const std::string& dir, const std::string& name) {
  return {absl::StrCat(dir, "/", name, ".pem"), "", absl::StrCat(dir, "/ca.crt")};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

}  // namespace relay::testing
