// static mode: serves files under static_path (GET/HEAD), index.html for folders.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "watchdog/handlers.h"

namespace faasd::watchdog {
namespace {

const char* TypeFor(absl::string_view path) {
  struct Ext {
    const char* ext;
    const char* type;
  };
  static const Ext kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".xml", "text/xml; charset=utf-8"},
      {".pdf", "application/pdf"},
      {".webp", "image/webp"},
  };
  std::string lower = absl::AsciiStrToLower(path);
  for (const Ext& e : kTypes) {
    if (absl::EndsWith(lower, e.ext)) return e.type;
  }
  return "application/octet-stream";
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Percent-decodes and normalises a URL path; false for ".." escapes and NUL bytes.
bool CleanPath(absl::string_view raw, std::string* out) {
  std::string decoded;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size()) {
      int hi = HexValue(raw[i + 1]), lo = HexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) return false;
      decoded.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      decoded.push_back(raw[i]);
    }
  }
  if (decoded.find('\0') != std::string::npos) return false;
  std::vector<std::string> parts;
  for (absl::string_view seg : absl::StrSplit(decoded, '/', absl::SkipEmpty())) {
    if (seg == ".") continue;
    if (seg == "..") return false;
    parts.emplace_back(seg);
  }
  out->clear();
  for (const std::string& p : parts) absl::StrAppend(out, "/", p);
  return true;
}

class StaticHandler : public Handler {
 public:
  explicit StaticHandler(const Config& config) : root_(config.static_path) {}

  void Serve(RequestContext& ctx) override {
    const MessageHead& req = ctx.head;
    if (req.method != "GET" && req.method != "HEAD") {
      ctx.writer.force_close();
      ctx.writer.Send(405, "text/plain", "static mode serves GET and HEAD only\n",
                      {{"Allow", "GET, HEAD"}});
      return;
    }
    std::string rel;
    if (!CleanPath(req.path, &rel)) {
      ctx.writer.Send(400, "text/plain", absl::StrCat("bad path ", req.path, "\n"));
      return;
    }
    std::string path = absl::StrCat(root_, rel);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      path = absl::StrCat(path, "/index.html");
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) ::close(fd);
      ctx.writer.Send(404, "text/plain", "404 page not found\n");
      return;
    }
    if (!ctx.writer.WriteHead(200, {{"Content-Type", TypeFor(path)}}, st.st_size)) {
      ::close(fd);
      return;
    }
    if (req.method == "GET") {
      char buf[64 * 1024];
      int64_t left = st.st_size;
      while (left > 0) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (!ctx.writer.WriteBody(absl::string_view(buf, static_cast<size_t>(n)))) break;
        left -= n;
      }
      if (left > 0) ctx.writer.force_close();  // file shrank under us
    }
    ::close(fd);
  }

 private:
  const std::string root_;
};

}  // namespace

std::unique_ptr<Handler> MakeStaticHandler(const Config& config) {
  return std::make_unique<StaticHandler>(config);
}

}  // namespace faasd::watchdog
