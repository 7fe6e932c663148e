// Helpers of the symbols integration tests; see symbols_util.h.
#include "tests/suites/symbols/symbols_util.h"

#include <zlib.h>

#include <fstream>
#include <map>
#include <vector>
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

std::string GzipBytes(const std::string& raw, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8,
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

pb::Profile WithoutLines(const pb::Profile& p) {
  pb::Profile out = p;
  // Functions: names only, and only those still used.
  std::map<uint64_t, uint64_t> kept;  // old function id -> new
  out.clear_function();
  for (pb::Location& loc : *out.mutable_location()) {
    if (loc.line_size() == 0) continue;
    pb::Line outer = loc.line(loc.line_size() - 1);
    loc.clear_line();
    auto [it, inserted] = kept.try_emplace(outer.function_id(), kept.size() + 1);
    if (inserted) {
      for (const pb::Function& f : p.function()) {
        if (f.id() != outer.function_id()) continue;
        pb::Function* g = out.add_function();
        g->set_id(it->second);
        g->set_name(f.name());
        g->set_system_name(f.system_name());
        break;
      }
    }
    pb::Line* line = loc.add_line();
    line->set_function_id(it->second);
  }
  for (pb::Mapping& m : *out.mutable_mapping()) {
    m.set_has_filenames(false);
    m.set_has_line_numbers(false);
    m.set_has_inline_frames(false);
  }
  // Compact the string table: every string field, renumbered in order of
  // first use ("" stays at 0).
  std::map<int64_t, int64_t> remap = {{0, 0}};
  auto use = [&](int64_t old) {
    auto [it, inserted] = remap.try_emplace(old, remap.size());
    return it->second;
  };
  auto fix = [&](auto* msg, auto get, auto set) { (msg->*set)(use((msg->*get)())); };
  for (pb::ValueType& t : *out.mutable_sample_type()) {
    fix(&t, &pb::ValueType::type, &pb::ValueType::set_type);
    fix(&t, &pb::ValueType::unit, &pb::ValueType::set_unit);
  }
  for (pb::Sample& s : *out.mutable_sample()) {
    for (pb::Label& l : *s.mutable_label()) {
      fix(&l, &pb::Label::key, &pb::Label::set_key);
      fix(&l, &pb::Label::str, &pb::Label::set_str);
      fix(&l, &pb::Label::num_unit, &pb::Label::set_num_unit);
    }
  }
  for (pb::Mapping& m : *out.mutable_mapping()) {
    fix(&m, &pb::Mapping::filename, &pb::Mapping::set_filename);
    fix(&m, &pb::Mapping::build_id, &pb::Mapping::set_build_id);
  }
  for (pb::Function& f : *out.mutable_function()) {
    fix(&f, &pb::Function::name, &pb::Function::set_name);
    fix(&f, &pb::Function::system_name, &pb::Function::set_system_name);
  }
  fix(&out, &pb::Profile::drop_frames, &pb::Profile::set_drop_frames);
  fix(&out, &pb::Profile::keep_frames, &pb::Profile::set_keep_frames);
  fix(out.mutable_period_type(), &pb::ValueType::type, &pb::ValueType::set_type);
  fix(out.mutable_period_type(), &pb::ValueType::unit, &pb::ValueType::set_unit);
  for (int i = 0; i < out.comment_size(); ++i) out.set_comment(i, use(out.comment(i)));
  fix(&out, &pb::Profile::default_sample_type, &pb::Profile::set_default_sample_type);
  std::vector<std::string> strings(remap.size());
  for (const auto& [old_index, new_index] : remap) {
    strings[new_index] = Str(p, old_index);
  }
  out.clear_string_table();
  for (std::string& s : strings) out.add_string_table(std::move(s));
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
