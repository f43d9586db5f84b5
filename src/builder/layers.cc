#include "builder/layers.h"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace faasd::builder {
namespace {

constexpr size_t kBlock = 512;

void PutOctal(char* field, size_t width, uint64_t value) {
  // width-1 octal digits, zero padded, then NUL: the form GNU tar and Go's archive/tar use.
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
}

void PutString(char* field, size_t width, std::string_view s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

std::string Header(std::string_view name, char type, uint32_t mode, uint64_t size, int64_t mtime,
                   std::string_view link) {
  std::string h(kBlock, '\0');
  char* b = h.data();
  PutString(b, 100, name);
  PutOctal(b + 100, 8, mode);
  PutOctal(b + 108, 8, 0);
  PutOctal(b + 116, 8, 0);
  PutOctal(b + 124, 12, size);
  PutOctal(b + 136, 12, static_cast<uint64_t>(mtime));
  std::memset(b + 148, ' ', 8);
  b[156] = type;
  PutString(b + 157, 100, link);
  std::memcpy(b + 257,
              "ustar\0"
              "00",
              8);
  PutOctal(b + 329, 8, 0);
  PutOctal(b + 337, 8, 0);
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(b[i]);
  std::snprintf(b + 148, 8, "%06o", sum);  // six digits, NUL, then the space already there
  return h;
}

void Pad(std::string* out) {
  if (size_t r = out->size() % kBlock; r != 0) out->append(kBlock - r, '\0');
}

// One PAX record: "<len> key=value\n", where <len> counts the whole record including itself.
std::string PaxRecord(std::string_view key, std::string_view value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

absl::Status ValidPath(const std::string& path) {
  if (path.empty() || path.front() == '/')
    return absl::InvalidArgumentError(
        absl::StrCat("tar entry \"", path, "\": not a relative path"));
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..")
      return absl::InvalidArgumentError(
          absl::StrCat("tar entry \"", path, "\": empty, '.' or '..' component"));
  }
  return absl::OkStatus();
}

uint64_t ParseOctal(const char* field, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) {
    char c = field[i];
    if (c == ' ' && v == 0) continue;
    if (c < '0' || c > '7') break;
    v = v * 8 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string CString(const char* field, size_t width) {
  return std::string(field, strnlen(field, width));
}

}  // namespace

absl::StatusOr<std::string> WriteTar(std::vector<TarEntry> entries, int64_t mtime) {
  std::map<std::string, TarEntry> by_path;
  for (TarEntry& e : entries) {
    absl::Status s = ValidPath(e.path);
    if (!s.ok()) return s;
    std::string key = e.path;
    by_path[key] = std::move(e);
  }
  // Parents every entry needs; an explicit directory entry keeps its own mode.
  std::vector<std::string> parents;
  for (const auto& [path, e] : by_path) {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      parents.push_back(path.substr(0, slash));
    }
  }
  for (const std::string& p : parents) {
    auto it = by_path.find(p);
    if (it == by_path.end()) {
      by_path[p] = TarEntry{p, TarEntry::Type::kDir, 0755, "", ""};
    } else if (it->second.type != TarEntry::Type::kDir) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar entry \"", p, "\" is a file but also a parent directory"));
    }
  }
  std::string out;
  for (const auto& [path, e] : by_path) {
    std::string name = e.type == TarEntry::Type::kDir ? path + "/" : path;
    char type = e.type == TarEntry::Type::kDir       ? '5'
                : e.type == TarEntry::Type::kSymlink ? '2'
                                                     : '0';
    uint64_t size = e.type == TarEntry::Type::kFile ? e.data.size() : 0;
    if (name.size() > 100 || e.link.size() > 100) {
      std::string pax;
      if (name.size() > 100) pax += PaxRecord("path", name);
      if (e.link.size() > 100) pax += PaxRecord("linkpath", e.link);
      out += Header("PaxHeaders/entry", 'x', 0644, pax.size(), mtime, "");
      out += pax;
      Pad(&out);
    }
    out += Header(name, type, e.mode & 07777, size, mtime, e.link);
    if (size > 0) {
      out += e.data;
      Pad(&out);
    }
  }
  out.append(2 * kBlock, '\0');
  return out;
}

absl::StatusOr<std::vector<TarEntry>> ReadTar(std::string_view archive) {
  std::vector<TarEntry> out;
  std::map<std::string, std::string> pax;
  size_t off = 0;
  while (off + kBlock <= archive.size()) {
    const char* h = archive.data() + off;
    bool zero = true;
    for (size_t i = 0; i < kBlock && zero; ++i) zero = h[i] == '\0';
    if (zero) return out;
    unsigned sum = 0;
    for (size_t i = 0; i < kBlock; ++i)
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    if (ParseOctal(h + 148, 8) != sum)
      return absl::InvalidArgumentError(absl::StrCat("tar: bad header checksum at offset ", off));
    uint64_t size = ParseOctal(h + 124, 12);
    off += kBlock;
    if (size > archive.size() - off)
      return absl::InvalidArgumentError(absl::StrCat("tar: entry at ", off, " runs past the end"));
    std::string_view data = archive.substr(off, size);
    off += (size + kBlock - 1) / kBlock * kBlock;
    char type = h[156];
    if (type == 'x') {
      // Records: "<len> key=value\n".
      size_t p = 0;
      while (p < data.size()) {
        size_t sp = data.find(' ', p);
        size_t len = 0;
        if (sp == std::string_view::npos) break;
        for (size_t i = p; i < sp; ++i) len = len * 10 + static_cast<size_t>(data[i] - '0');
        if (len == 0 || p + len > data.size()) break;
        std::string_view rec = data.substr(sp + 1, p + len - sp - 2);
        size_t eq = rec.find('=');
        if (eq != std::string_view::npos)
          pax[std::string(rec.substr(0, eq))] = std::string(rec.substr(eq + 1));
        p += len;
      }
      continue;
    }
    if (type == 'g') continue;
    TarEntry e;
    std::string name = CString(h, 100);
    if (std::memcmp(h + 257, "ustar", 5) == 0) {
      std::string prefix = CString(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    e.link = CString(h + 157, 100);
    if (auto it = pax.find("path"); it != pax.end()) name = it->second;
    if (auto it = pax.find("linkpath"); it != pax.end()) e.link = it->second;
    pax.clear();
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (name.rfind("./", 0) == 0) name = name.substr(2);
    e.path = name;
    e.mode = static_cast<uint32_t>(ParseOctal(h + 100, 8) & 07777);
    switch (type) {
      case '0':
      case '\0':
        e.type = TarEntry::Type::kFile;
        e.data = std::string(data);
        break;
      case '5':
        e.type = TarEntry::Type::kDir;
        break;
      case '2':
        e.type = TarEntry::Type::kSymlink;
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "tar entry \"", name, "\": unsupported type '", std::string(1, type), "'"));
    }
    out.push_back(std::move(e));
  }
  return absl::InvalidArgumentError("tar: archive ends without its end-of-archive blocks");
}

absl::StatusOr<std::string> Gzip(std::string_view data) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return absl::InternalError("gzip: deflateInit2 failed");
  gz_header header{};
  header.os = 255;  // "unknown": the bytes do not depend on the building OS
  deflateSetHeader(&z, &header);
  std::string out;
  out.resize(deflateBound(&z, data.size()) + 64);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  size_t n = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError(absl::StrCat("gzip: deflate returned ", rc));
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> Gunzip(std::string_view data, size_t max_bytes) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return absl::InternalError("gunzip: inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      return absl::InvalidArgumentError(absl::StrCat("gunzip: corrupt data (zlib ", rc, ")"));
    }
    out.append(buf, sizeof(buf) - z.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&z);
      return absl::ResourceExhaustedError(absl::StrCat("gunzip: more than ", max_bytes, " bytes"));
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      return absl::InvalidArgumentError("gunzip: truncated data");
    }
  }
  inflateEnd(&z);
  return out;
}

namespace {

absl::Status Walk(const std::string& src, const std::string& dest, std::vector<TarEntry>* out,
                  int depth) {
  if (depth > 64) return absl::InvalidArgumentError(absl::StrCat(src, ": nested too deeply"));
  DIR* d = ::opendir(src.c_str());
  if (d == nullptr)
    return absl::NotFoundError(absl::StrCat("read ", src, ": ", std::strerror(errno)));
  std::vector<std::string> names;
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const std::string& n : names) {
    std::string path = src + "/" + n;
    std::string to = dest.empty() ? n : dest + "/" + n;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
      return absl::NotFoundError(absl::StrCat("stat ", path, ": ", std::strerror(errno)));
    TarEntry e;
    e.path = to;
    if (S_ISDIR(st.st_mode)) {
      e.type = TarEntry::Type::kDir;
      e.mode = 0755;
      out->push_back(e);
      absl::Status s = Walk(path, to, out, depth + 1);
      if (!s.ok()) return s;
    } else if (S_ISREG(st.st_mode)) {
      e.type = TarEntry::Type::kFile;
      e.mode = (st.st_mode & S_IXUSR) ? 0755 : 0644;
      absl::StatusOr<std::string> data = ReadFile(path);
      if (!data.ok()) return data.status();
      e.data = std::move(*data);
      out->push_back(std::move(e));
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
      if (n < 0)
        return absl::NotFoundError(absl::StrCat("readlink ", path, ": ", std::strerror(errno)));
      e.type = TarEntry::Type::kSymlink;
      e.mode = 0777;
      e.link.assign(buf, static_cast<size_t>(n));
      out->push_back(std::move(e));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a file, directory or symlink; cannot go into an image"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AddTree(const std::string& src_dir, const std::string& dest,
                     std::vector<TarEntry>* entries) {
  struct stat st;
  if (::stat(src_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::NotFoundError(absl::StrCat(src_dir, ": not a directory"));
  return Walk(src_dir, dest, entries, 0);
}

absl::StatusOr<std::vector<TarEntry>> BusyboxBase(const std::string& busybox) {
  absl::StatusOr<std::string> binary = ReadFile(busybox);
  if (!binary.ok())
    return absl::NotFoundError(
        absl::StrCat("base busybox ", busybox, ": ", binary.status().message()));
  std::vector<TarEntry> out;
  out.push_back({"bin/busybox", TarEntry::Type::kFile, 0755, std::move(*binary), ""});
  // The applet list comes from the binary itself, so the same busybox gives the same layer.
  std::string cmd = absl::StrCat("'", busybox, "' --list-full 2>/dev/null");
  FILE* p = busybox.find('\'') == std::string::npos ? ::popen(cmd.c_str(), "r") : nullptr;
  std::string list;
  if (p != nullptr) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) list.append(buf, n);
    if (::pclose(p) != 0) list.clear();
  }
  if (list.empty())
    return absl::FailedPreconditionError(
        absl::StrCat("base busybox ", busybox, ": `--list-full` gave no applets (not busybox?)"));
  for (absl::string_view applet : absl::StrSplit(list, '\n', absl::SkipWhitespace())) {
    std::string path(absl::StripAsciiWhitespace(applet));
    if (path == "bin/busybox" || !ValidPath(path).ok()) continue;
    out.push_back({path, TarEntry::Type::kSymlink, 0777, "", "/bin/busybox"});
  }
  out.push_back({"bin/sh", TarEntry::Type::kSymlink, 0777, "", "/bin/busybox"});
  out.push_back({"etc/passwd", TarEntry::Type::kFile, 0644,
                 "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
                 ""});
  out.push_back(
      {"etc/group", TarEntry::Type::kFile, 0644, "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n", ""});
  out.push_back({"etc/hosts", TarEntry::Type::kFile, 0644, "127.0.0.1\tlocalhost\n", ""});
  out.push_back({"etc/resolv.conf", TarEntry::Type::kFile, 0644, "", ""});
  out.push_back({"tmp", TarEntry::Type::kDir, 01777, "", ""});
  out.push_back({"root", TarEntry::Type::kDir, 0700, "", ""});
  for (const char* d : {"home/app", "proc", "sys", "dev", "var/openfaas/secrets", "usr/bin"})
    out.push_back({d, TarEntry::Type::kDir, 0755, "", ""});
  return out;
}

std::string Rfc3339(int64_t seconds) {
  std::time_t t = static_cast<std::time_t>(seconds);
  struct tm tm;
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ConfigJson(const ConfigInput& in) {
  // nlohmann::json objects are std::maps: keys come out sorted, so the bytes are stable.
  nlohmann::json config = nlohmann::json::object();
  if (!in.entrypoint.empty()) config["Entrypoint"] = in.entrypoint;
  if (!in.env.empty()) config["Env"] = in.env;
  if (!in.working_dir.empty()) config["WorkingDir"] = in.working_dir;
  if (!in.exposed_ports.empty()) {
    nlohmann::json ports = nlohmann::json::object();
    for (const std::string& p : in.exposed_ports) ports[p] = nlohmann::json::object();
    config["ExposedPorts"] = ports;
  }
  if (!in.labels.empty()) config["Labels"] = in.labels;
  nlohmann::json j = {
      {"architecture", in.architecture},
      {"os", in.os},
      {"created", Rfc3339(in.created)},
      {"config", config},
      {"rootfs", {{"type", "layers"}, {"diff_ids", in.diff_ids}}},
  };
  if (!in.variant.empty()) j["variant"] = in.variant;
  return j.dump();
}

// Whole-file read, for the base tarball, busybox and the watchdog.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ss.str();
}

}  // namespace faasd::builder
