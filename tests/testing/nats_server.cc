#include "tests/testing/nats_server.h"

#include <dirent.h>
#include <nats/nats.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testing/wait.h"

namespace relay::testing {
namespace {

constexpr const char* kClusterName = "relay-test";

// True when the JetStream of the server at `url` answers an account info
// and a stream list (in a cluster, the latter needs a meta leader).
bool JetStreamAnswers(const std::string& url) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return false;
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetTimeout(opts, 1000);
  natsOptions_SetAllowReconnect(opts, false);
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return false;
  jsOptions js_opts;
  jsOptions_Init(&js_opts);
  js_opts.Wait = 1000;
  jsCtx* js = nullptr;
  bool ok = natsConnection_JetStream(&js, nc, &js_opts) == NATS_OK;
  if (ok) {
    jsAccountInfo* info = nullptr;
    ok = js_GetAccountInfo(&info, js, nullptr, nullptr) == NATS_OK;
    if (ok) jsAccountInfo_Destroy(info);
  }
  if (ok) {
    jsStreamNamesList* names = nullptr;
    s = js_StreamNames(&names, js, nullptr, nullptr);
    ok = s == NATS_OK || s == NATS_NOT_FOUND;  // NOT_FOUND: no stream yet
    if (names != nullptr) jsStreamNamesList_Destroy(names);
  }
  if (js != nullptr) jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return ok;
}

// True when the cluster behind `url` places a stream on `replicas` peers
// (makes and deletes a probe stream): every node has joined the meta group.
// Before that, "no suitable peers for placement" fails R3 creates.
bool PlacesReplicas(const std::string& url, int replicas) {
  natsConnection* nc = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) return false;
  jsOptions js_opts;
  jsOptions_Init(&js_opts);
  js_opts.Wait = 2000;
  jsCtx* js = nullptr;
  bool ok = natsConnection_JetStream(&js, nc, &js_opts) == NATS_OK;
  if (ok) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = "TEST_PLACEMENT_PROBE";  // not a Relay stream name
    config.Storage = js_MemoryStorage;
    config.Replicas = replicas;
    ok = js_AddStream(nullptr, js, &config, nullptr, nullptr) == NATS_OK;
    if (ok) js_DeleteStream(js, config.Name, nullptr, nullptr);
  }
  if (js != nullptr) jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NatsServer>> NatsServer::Start(int nodes, absl::Duration timeout,
                                                              const std::string& config) {
  if (nodes < 1) return absl::InvalidArgumentError("a NATS cluster needs at least one node");
  if (access(kBinary, X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kBinary, " is missing: run scripts/setup (Debian package nats-server)"));
  }
  std::unique_ptr<NatsServer> server(new NatsServer());
  // Without a limit of its own JetStream allows 75% of the disk's free
  // space, and each stream reserves its max_bytes (4 GiB by default in
  // Relay): five streams then failed to create on a disk with 26 GB free
  // ("insufficient storage resources"). The tests write kilobytes.
  {
    const std::string conf = server->dir_.Join("jetstream.conf");
    std::ofstream out(conf, std::ios::trunc);
    out << "jetstream {\n  max_file_store: 1TB\n  max_memory_store: 1GB\n}\n" << config << "\n";
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", conf));
  }
  for (int i = 0; i < nodes; ++i) {
    Node node;
    node.name = absl::StrCat("n", i);
    node.client_port = PickFreePort();
    node.cluster_port = nodes > 1 ? PickFreePort() : 0;
    node.store_dir = server->dir_.Join(node.name);
    node.log = server->dir_.Join(node.name + ".log");
    node.process = std::make_unique<Subprocess>();
    if (node.client_port == 0 || (nodes > 1 && node.cluster_port == 0)) {
      return absl::UnavailableError("no free port on 127.0.0.1");
    }
    server->nodes_.push_back(std::move(node));
  }
  for (int i = 0; i < nodes; ++i) {
    if (absl::Status s = server->Launch(i); !s.ok()) return s;
  }
  for (int i = 0; i < nodes; ++i) {
    if (absl::Status s = server->WaitReady(i, timeout); !s.ok()) return s;
  }
  if (nodes > 1 && !WaitFor([&] { return PlacesReplicas(server->url(0), nodes); }, timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("the ", nodes, "-node NATS cluster places no ",
                                                    nodes, "-replica stream within ",
                                                    absl::FormatDuration(timeout)));
  }
  return server;
}

NatsServer::~NatsServer() {
  for (Node& node : nodes_) {
    if (node.process->running()) node.process->Stop(SIGKILL);
  }
}

std::string NatsServer::url(int node) const {
  return absl::StrCat("nats://127.0.0.1:", nodes_[node].client_port);
}

std::string NatsServer::urls() const {
  std::vector<std::string> all;
  for (int i = 0; i < size(); ++i) all.push_back(url(i));
  return absl::StrJoin(all, ",");
}

std::vector<std::string> NatsServer::Argv(int i) const {
  const Node& node = nodes_[i];
  std::vector<std::string> argv = {kBinary,
                                   "-c",
                                   dir_.Join("jetstream.conf"),
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   absl::StrCat(node.client_port),
                                   "-js",
                                   "-sd",
                                   node.store_dir,
                                   "--server_name",
                                   node.name};
  if (size() > 1) {
    std::vector<std::string> routes;
    for (int j = 0; j < size(); ++j) {
      if (j != i) routes.push_back(absl::StrCat("nats://127.0.0.1:", nodes_[j].cluster_port));
    }
    argv.insert(argv.end(), {"--cluster_name", kClusterName, "--cluster",
                             absl::StrCat("nats://127.0.0.1:", node.cluster_port), "--routes",
                             absl::StrJoin(routes, ",")});
  }
  return argv;
}

absl::Status NatsServer::Launch(int i) {
  if (!nodes_[i].process->Start(Argv(i), nodes_[i].log)) {
    return absl::InternalError(absl::StrCat("cannot start ", kBinary));
  }
  return absl::OkStatus();
}

absl::Status NatsServer::WaitReady(int i, absl::Duration timeout) const {
  const std::string node_url = url(i);
  if (!WaitFor([&] { return JetStreamAnswers(node_url); }, timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("JetStream of ", nodes_[i].name, " at ", node_url, " not ready within ",
                     absl::FormatDuration(timeout), "; see ", nodes_[i].log));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> NatsServer::StreamLeader(const std::string& stream) const {
  for (int i = 0; i < size(); ++i) {
    if (!running(i)) continue;
    natsConnection* nc = nullptr;
    if (natsConnection_ConnectTo(&nc, url(i).c_str()) != NATS_OK) continue;
    jsCtx* js = nullptr;
    jsStreamInfo* si = nullptr;
    std::string leader;
    if (natsConnection_JetStream(&js, nc, nullptr) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream.c_str(), nullptr, nullptr) == NATS_OK) {
      if (si->Cluster != nullptr && si->Cluster->Leader != nullptr) leader = si->Cluster->Leader;
      jsStreamInfo_Destroy(si);
    }
    if (js != nullptr) jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    for (int j = 0; j < size(); ++j) {
      if (nodes_[j].name == leader) return j;
    }
  }
  return absl::NotFoundError(absl::StrCat("stream ", stream, " has no leader"));
}

void NatsServer::Kill(int node) {
  if (nodes_[node].process->running()) nodes_[node].process->Stop(SIGKILL);
}

absl::Status NatsServer::Restart(int node, absl::Duration timeout) {
  if (nodes_[node].process->running()) {
    return absl::FailedPreconditionError(absl::StrCat(nodes_[node].name, " is running"));
  }
  if (absl::Status s = Launch(node); !s.ok()) return s;
  return WaitReady(node, timeout);
}

namespace {

// Runs `fn(kv)` on the bucket over a connection of its own.
absl::Status WithBucket(const std::string& servers, const std::string& bucket,
                        const std::function<absl::Status(kvStore*)>& fn) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  kvStore* kv = nullptr;
  absl::Status status;
  if (natsConnection_ConnectTo(&nc, servers.c_str()) != NATS_OK) {
    status = absl::UnavailableError(absl::StrCat("cannot reach NATS at ", servers));
  } else if (natsConnection_JetStream(&js, nc, nullptr) != NATS_OK ||
             js_KeyValue(&kv, js, bucket.c_str()) != NATS_OK) {
    status = absl::UnavailableError(absl::StrCat("no bucket ", bucket));
  } else {
    status = fn(kv);
  }
  if (kv != nullptr) kvStore_Destroy(kv);
  if (js != nullptr) jsCtx_Destroy(js);
  if (nc != nullptr) natsConnection_Destroy(nc);
  return status;
}

}  // namespace

absl::StatusOr<std::string> KvGet(const std::string& servers, const std::string& bucket,
                                  const std::string& key) {
  std::string value;
  absl::Status status = WithBucket(servers, bucket, [&](kvStore* kv) {
    kvEntry* entry = nullptr;
    natsStatus s = kvStore_Get(&entry, kv, key.c_str());
    if (s == NATS_NOT_FOUND) return absl::NotFoundError(absl::StrCat("no key ", key));
    if (s != NATS_OK) return absl::UnavailableError(absl::StrCat("cannot read key ", key));
    value.assign(static_cast<const char*>(kvEntry_Value(entry)),
                 static_cast<size_t>(kvEntry_ValueLen(entry)));
    kvEntry_Destroy(entry);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return value;
}

absl::Status KvPut(const std::string& servers, const std::string& bucket, const std::string& key,
                   const std::string& bytes) {
  return WithBucket(servers, bucket, [&](kvStore* kv) {
    return kvStore_Put(nullptr, kv, key.c_str(), bytes.data(), static_cast<int>(bytes.size())) ==
                   NATS_OK
               ? absl::OkStatus()
               : absl::UnavailableError(absl::StrCat("cannot write key ", key));
  });
}

namespace {

// Runs `fn` on a JetStream context of its own connection to `servers`.
absl::Status WithJetStream(const std::string& servers,
                           const std::function<absl::Status(jsCtx*)>& fn) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  absl::Status status;
  if (natsConnection_ConnectTo(&nc, servers.c_str()) != NATS_OK ||
      natsConnection_JetStream(&js, nc, nullptr) != NATS_OK) {
    status = absl::UnavailableError(absl::StrCat("cannot reach NATS at ", servers));
  } else {
    status = fn(js);
  }
  if (js != nullptr) jsCtx_Destroy(js);
  if (nc != nullptr) natsConnection_Destroy(nc);
  return status;
}

}  // namespace

absl::Status AddStream(const std::string& servers, const StreamByHand& stream) {
  return WithJetStream(servers, [&](jsCtx* js) {
    const char* subjects[] = {stream.subject.c_str()};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = stream.name.c_str();
    config.Description = stream.description.c_str();
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    config.Duplicates = absl::ToInt64Nanoseconds(absl::Hours(1));
    config.MaxMsgSize = stream.max_msg_size;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_AddStream(nullptr, js, &config, nullptr, &code) != NATS_OK) {
      return absl::UnavailableError(
          absl::StrCat("cannot make stream ", stream.name, " (JetStream error ", code, ")"));
    }
    return absl::OkStatus();
  });
}

absl::Status DeleteStream(const std::string& servers, const std::string& name) {
  return WithJetStream(servers, [&](jsCtx* js) {
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_DeleteStream(js, name.c_str(), nullptr, &code) != NATS_OK) {
      return absl::UnavailableError(
          absl::StrCat("cannot delete stream ", name, " (JetStream error ", code, ")"));
    }
    return absl::OkStatus();
  });
}

absl::Status SetStreamSubject(const std::string& servers, const std::string& name,
                              const std::string& subject) {
  return WithJetStream(servers, [&](jsCtx* js) {
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, js, name.c_str(), nullptr, nullptr) != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("no stream ", name));
    }
    const char* subjects[] = {subject.c_str()};
    const char** own = info->Config->Subjects;  // `info` frees these
    const int own_len = info->Config->SubjectsLen;
    info->Config->Subjects = subjects;
    info->Config->SubjectsLen = 1;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_UpdateStream(nullptr, js, info->Config, nullptr, &code);
    info->Config->Subjects = own;
    info->Config->SubjectsLen = own_len;
    jsStreamInfo_Destroy(info);
    if (s != NATS_OK) {
      return absl::UnavailableError(
          absl::StrCat("cannot update stream ", name, " (JetStream error ", code, ")"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> StreamAllowsDirect(const std::string& servers, const std::string& name) {
  bool direct = false;
  absl::Status status = WithJetStream(servers, [&](jsCtx* js) {
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, js, name.c_str(), nullptr, nullptr) != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("no stream ", name));
    }
    direct = info->Config->AllowDirect;
    jsStreamInfo_Destroy(info);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return direct;
}

absl::Status KvCreate(const std::string& servers, const std::string& bucket, int replicas) {
  return WithJetStream(servers, [&](jsCtx* js) {
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = bucket.c_str();
    config.History = 1;
    config.StorageType = js_FileStorage;
    config.Replicas = replicas;
    kvStore* kv = nullptr;
    if (js_CreateKeyValue(&kv, js, &config) != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("cannot create bucket ", bucket));
    }
    kvStore_Destroy(kv);
    return absl::OkStatus();
  });
}

namespace {

// Whether every thread of `pid` is stopped (state T or t in
// /proc/<pid>/task/<tid>/stat).
bool AllThreadsStopped(pid_t pid) {
  const std::string dir = absl::StrCat("/proc/", pid, "/task");
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return false;
  bool stopped = true;
  int seen = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(absl::StrCat(dir, "/", entry->d_name, "/stat"));
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // "tid (comm) S ...": the state follows the last ')'.
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
    const char state = stat[paren + 2];
    ++seen;
    if (state != 'T' && state != 't') stopped = false;
  }
  closedir(tasks);
  return stopped && seen > 0;
}

}  // namespace

void NatsServer::Pause(int node) {
  const pid_t pid = nodes_[node].process->pid();
  ::kill(pid, SIGSTOP);
  WaitFor([pid] { return AllThreadsStopped(pid); }, absl::Seconds(5));
}

}  // namespace relay::testing
