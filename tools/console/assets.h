#ifndef RELAY_TOOLS_CONSOLE_ASSETS_H_
#define RELAY_TOOLS_CONSOLE_ASSETS_H_

// The console's web page, compiled into the binary from tools/console/web
// (cmake/EmbedFiles.cmake), so relay-console needs no files at run time.

#include <string>
#include <vector>

namespace relay::console {

struct Asset {
  std::string path;          // relative to web/: "index.html", "app.js"
  std::string content_type;  // "text/html; charset=utf-8"
  std::string data;
};

// Every file of tools/console/web, in name order.
const std::vector<Asset>& Assets();

}  // namespace relay::console

#endif  // RELAY_TOOLS_CONSOLE_ASSETS_H_
