// A tiny HTTP/1.1 server for the watchdog's http mode: it listens on 127.0.0.1:8082 (the
// upstream_url in stack.yml) and answers every request with
//   hello from C++: METHOD PATH (N bytes)
// It depends on nothing but the C++ standard library and POSIX, so `g++ -static` makes a binary
// that runs on the busybox base. Connections are kept alive; bodies may be Content-Length or
// chunked. One thread per connection: the watchdog keeps only a few open.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

// Buffered reads from one connection.
class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  ~Conn() { ::close(fd_); }
  bool Fill() {
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buf_.append(buf, static_cast<size_t>(n));
    return true;
  }
  bool ReadUntil(const std::string& delim, std::string* out) {
    size_t pos;
    while ((pos = buf_.find(delim)) == std::string::npos) {
      if (buf_.size() > (1 << 20) || !Fill()) return false;
    }
    *out = buf_.substr(0, pos);
    buf_.erase(0, pos + delim.size());
    return true;
  }
  bool ReadN(size_t n, size_t* counted) {
    while (buf_.size() < n) {
      *counted += buf_.size();
      n -= buf_.size();
      buf_.clear();
      if (!Fill()) return false;
    }
    *counted += n;
    buf_.erase(0, n);
    return true;
  }
  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

 private:
  int fd_;
  std::string buf_;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void Serve(int fd) {
  Conn c(fd);
  for (;;) {
    std::string head;
    if (!c.ReadUntil("\r\n\r\n", &head)) return;
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) return;
    std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string path = target.substr(0, target.find('?'));
    size_t length = 0;
    bool chunked = false, close = line.compare(sp2 + 1, std::string::npos, "HTTP/1.0") == 0;
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string h = Lower(head.substr(pos, end - pos));
      if (h.rfind("content-length:", 0) == 0) length = std::strtoul(h.c_str() + 15, nullptr, 10);
      if (h.rfind("transfer-encoding:", 0) == 0 && h.find("chunked") != std::string::npos)
        chunked = true;
      if (h.rfind("connection:", 0) == 0 && h.find("close") != std::string::npos) close = true;
      pos = end + 2;
    }
    size_t body = 0;
    if (chunked) {
      for (;;) {
        std::string size_line;
        if (!c.ReadUntil("\r\n", &size_line)) return;
        size_t n = std::strtoul(size_line.c_str(), nullptr, 16);
        size_t ignored = 0;
        if (n == 0) {
          std::string trailer;
          do {
            if (!c.ReadUntil("\r\n", &trailer)) return;
          } while (!trailer.empty());
          break;
        }
        if (!c.ReadN(n, &body) || !c.ReadN(2, &ignored)) return;
      }
    } else if (length > 0 && !c.ReadN(length, &body)) {
      return;
    }
    std::string text =
        "hello from C++: " + method + " " + path + " (" + std::to_string(body) + " bytes)\n";
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                       std::to_string(text.size()) + "\r\n" +
                       (close ? "Connection: close\r\n" : "") + "\r\n" +
                       (method == "HEAD" ? "" : text);
    if (!c.Send(resp) || close) return;
  }
}

}  // namespace

int main() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(8082);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(s, 128) != 0) {
    std::perror("cpp-http: listen 127.0.0.1:8082");
    return 1;
  }
  std::fprintf(stderr, "cpp-http: listening on 127.0.0.1:8082\n");
  for (;;) {
    int fd = ::accept(s, nullptr, nullptr);
    if (fd < 0) continue;
    std::thread(Serve, fd).detach();
  }
}
