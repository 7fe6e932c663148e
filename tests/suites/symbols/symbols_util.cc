// Helpers of the symbols integration tests; see symbols_util.h.
#include "tests/suites/symbols/symbols_util.h"

#include <zlib.h>

#include <fstream>
#include <regex>
#include <utility>

#include "http/httplib_compat.h"
#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {

std::string Gunzip(const std::string& gz) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return "";
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // truncated
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "";
}

std::string GzipBytes(const std::string& raw) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return "";
  }
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(out.size() - zs.avail_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "";
}

std::optional<pb::Profile> ParseProfileGz(const std::string& gz,
                                          std::string* error) {
  const std::string raw = Gunzip(gz);
  if (raw.empty()) {
    *error = "not gzip data (" + std::to_string(gz.size()) + " bytes)";
    return std::nullopt;
  }
  pb::Profile p;
  if (!p.ParseFromString(raw)) {
    *error = "not a Profile message";
    return std::nullopt;
  }
  return p;
}

std::string Str(const pb::Profile& p, int64_t index) {
  if (index < 0 || index >= p.string_table_size()) return "<bad index>";
  return p.string_table(static_cast<int>(index));
}

pb::Profile WithoutSymbols(const pb::Profile& p) {
  pb::Profile out = p;
  out.clear_function();
  for (pb::Location& loc : *out.mutable_location()) loc.clear_line();
  for (pb::Mapping& m : *out.mutable_mapping()) {
    m.set_has_functions(false);
    m.set_has_filenames(false);
    m.set_has_line_numbers(false);
    m.set_has_inline_frames(false);
  }
  return out;
}

std::string ReadelfBuildId(const std::string& readelf, const std::string& path,
                           std::string* error) {
  const CommandResult r = RunCommand({readelf, "-n", path}, {}, Millis(20000));
  if (!r.ok()) {
    *error = readelf + " -n " + path + ": " + r.status.Describe() + "\n" + r.err;
    return "";
  }
  static const std::regex kBuildId(R"(Build ID:\s*([0-9a-fA-F]+))");
  std::smatch m;
  if (!std::regex_search(r.out, m, kBuildId)) return "";
  std::string id = m[1].str();
  for (char& c : id) c = static_cast<char>(std::tolower(c));
  return id;
}

int MarkerLine(const std::string& source_path, const std::string& marker) {
  std::ifstream in(source_path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(marker) != std::string::npos) return n;
  }
  return 0;
}

struct SymbolProxy::Server {
  httplib::Server http;
};

SymbolProxy::SymbolProxy(std::string profile_gz, int agent_port)
    : server_(std::make_unique<Server>()) {
  httplib::Server& http = server_->http;
  http.Get("/debug/pprof/heap",
           [profile = std::move(profile_gz)](const httplib::Request&,
                                             httplib::Response& res) {
             res.set_content(profile, "application/octet-stream");
           });
  auto reply = [this](const HttpResult& agent, httplib::Response& res) {
    res.status = agent.status == 0 ? 502 : agent.status;
    res.set_content(agent.status == 0 ? agent.error : agent.body,
                    agent.Header("Content-Type").empty()
                        ? "text/plain"
                        : agent.Header("Content-Type").c_str());
    std::lock_guard<std::mutex> lock(mu_);
    last_response_ = res.body;
  };
  http.Post("/debug/pprof/symbol", [this, agent_port, reply](
                                       const httplib::Request& req,
                                       httplib::Response& res) {
    ++symbol_posts_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_request_ = req.body;
    }
    reply(HttpPost(agent_port, "/debug/pprof/symbol", req.body), res);
  });
  http.Get("/debug/pprof/symbol",
           [agent_port, reply](const httplib::Request&, httplib::Response& res) {
             reply(HttpGet(agent_port, "/debug/pprof/symbol"), res);
           });
  const int port = http.bind_to_any_port("127.0.0.1");
  if (port <= 0) return;
  port_ = port;
  thread_ = std::thread([this] { server_->http.listen_after_bind(); });
}

SymbolProxy::~SymbolProxy() {
  server_->http.stop();
  if (thread_.joinable()) thread_.join();
}

std::string SymbolProxy::last_symbol_request() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_request_;
}

std::string SymbolProxy::last_symbol_response() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_response_;
}

}  // namespace pprof_agent::integration
