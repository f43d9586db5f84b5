#include "builder/layers.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
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
#include "image/archive_filters.h"
#include "nlohmann/json.hpp"

namespace faasd::builder {
namespace {

constexpr size_t kChunk = 1 << 16;
constexpr uint64_t kMaxBaseBytes = uint64_t{4} << 30;

struct ArchiveWriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

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

// Deterministic gzip: the same input bytes, in any chunking, give the same output bytes.
class GzipStream {
 public:
  explicit GzipStream(ByteSink out) : out_(std::move(out)) {
    ok_ = deflateInit2(&z_, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    if (ok_) {
      header_.os = 255;  // "unknown": the bytes do not depend on the building OS
      deflateSetHeader(&z_, &header_);
    }
  }
  ~GzipStream() {
    if (ok_) deflateEnd(&z_);
  }
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  absl::Status Write(std::string_view in) { return Run(in, Z_NO_FLUSH); }
  absl::Status Finish() { return Run({}, Z_FINISH); }

 private:
  absl::Status Run(std::string_view in, int flush) {
    if (!ok_) return absl::InternalError("gzip: deflateInit2 failed");
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    char buf[kChunk];
    int rc = Z_OK;
    do {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof buf;
      rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR) return absl::InternalError("gzip: deflate failed");
      size_t n = sizeof buf - z_.avail_out;
      if (n > 0) {
        absl::Status s = out_(std::string_view(buf, n));
        if (!s.ok()) return s;
      }
    } while (z_.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    return absl::OkStatus();
  }

  ByteSink out_;
  z_stream z_{};
  gz_header header_{};
  bool ok_ = false;
};

// A file's bytes for a tar entry: read from disk now, checked to be what the walk saw.
absl::Status CopySource(const TarEntry& e,
                        const std::function<absl::Status(std::string_view)>& put) {
  UniqueFd fd;
  if (e.source_dir) {
    absl::StatusOr<UniqueFd> opened =
        OpenConfined(e.source_dir->get(), e.source_path,
                     O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY, Confine::kBeneath);
    if (!opened.ok()) return opened.status();
    fd = std::move(*opened);
  } else {
    fd = UniqueFd(::open(e.source_path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) return absl::NotFoundError(absl::StrCat(e.source_path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != e.source_size) {
    return absl::FailedPreconditionError(
        absl::StrCat(e.source_path, ": changed while the image was being built"));
  }
  std::string buf(kChunk, '\0');
  int64_t left = e.source_size;
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buf.data(), static_cast<size_t>(std::min<int64_t>(left, kChunk)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::DataLossError(absl::StrCat(e.source_path, ": read: ", std::strerror(errno)));
    if (n == 0)
      return absl::FailedPreconditionError(
          absl::StrCat(e.source_path, ": shrank while the image was being built"));
    absl::Status s = put(std::string_view(buf.data(), static_cast<size_t>(n)));
    if (!s.ok()) return s;
    left -= n;
  }
  return absl::OkStatus();
}

struct SinkContext {
  const ByteSink* sink;
  absl::Status error;
};

la_ssize_t ToSink(archive*, void* ctx, const void* buf, size_t len) {
  auto* c = static_cast<SinkContext*>(ctx);
  c->error = (*c->sink)(std::string_view(static_cast<const char*>(buf), len));
  return c->error.ok() ? static_cast<la_ssize_t>(len) : -1;
}

}  // namespace

absl::Status StreamTar(std::vector<TarEntry> entries, int64_t mtime, const ByteSink& sink) {
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

  SinkContext ctx{&sink, absl::OkStatus()};
  std::unique_ptr<archive, ArchiveWriteFree> a(archive_write_new());
  auto failed = [&](absl::string_view what) {
    if (!ctx.error.ok()) return ctx.error;
    const char* msg = archive_error_string(a.get());
    return absl::InternalError(absl::StrCat("tar: ", what, ": ", msg ? msg : "libarchive error"));
  };
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a.get(), 0) != ARCHIVE_OK ||
      archive_write_open2(a.get(), &ctx, nullptr, ToSink, nullptr, nullptr) != ARCHIVE_OK) {
    return failed("open");
  }
  std::unique_ptr<archive_entry, EntryFree> ae(archive_entry_new());
  for (const auto& [path, e] : by_path) {
    archive_entry_clear(ae.get());
    const bool file = e.type == TarEntry::Type::kFile;
    const int64_t size = !file                   ? 0
                         : e.source_path.empty() ? static_cast<int64_t>(e.data.size())
                                                 : e.source_size;
    archive_entry_set_pathname_utf8(ae.get(),
                                    (e.type == TarEntry::Type::kDir ? path + "/" : path).c_str());
    archive_entry_set_filetype(ae.get(), file                             ? AE_IFREG
                                         : e.type == TarEntry::Type::kDir ? AE_IFDIR
                                                                          : AE_IFLNK);
    archive_entry_set_perm(ae.get(), e.mode & 07777);
    archive_entry_set_size(ae.get(), size);
    archive_entry_set_mtime(ae.get(), mtime, 0);
    archive_entry_set_uid(ae.get(), 0);
    archive_entry_set_gid(ae.get(), 0);
    if (e.type == TarEntry::Type::kSymlink)
      archive_entry_set_symlink_utf8(ae.get(), e.link.c_str());
    if (archive_write_header(a.get(), ae.get()) != ARCHIVE_OK) return failed(path);
    if (!file) continue;
    // Named again: C++17 lambdas cannot capture a structured binding (clang refuses it).
    const std::string& entry_path = path;
    auto put = [&](std::string_view chunk) -> absl::Status {
      la_ssize_t n = archive_write_data(a.get(), chunk.data(), chunk.size());
      if (n < 0 || static_cast<size_t>(n) != chunk.size()) return failed(entry_path);
      return absl::OkStatus();
    };
    absl::Status s = e.source_path.empty() ? put(e.data) : CopySource(e, put);
    if (!s.ok()) return s;
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return failed("close");
  return absl::OkStatus();
}

absl::StatusOr<std::string> WriteTar(std::vector<TarEntry> entries, int64_t mtime) {
  std::string out;
  absl::Status s = StreamTar(std::move(entries), mtime, [&](std::string_view b) {
    out.append(b.data(), b.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<TarEntry>> ReadTar(std::string_view tar) {
  std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tar: ", archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable"));
  }
  std::vector<TarEntry> out;
  archive_entry* ae = nullptr;
  while (true) {
    int rc = archive_read_next_header(a.get(), &ae);
    if (rc == ARCHIVE_EOF) return out;
    if (rc != ARCHIVE_OK) {
      const char* msg = archive_error_string(a.get());
      return absl::InvalidArgumentError(absl::StrCat("tar: ", msg ? msg : "bad header"));
    }
    TarEntry e;
    const char* name = archive_entry_pathname_utf8(ae);
    std::string path = name ? name : "";
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (path.rfind("./", 0) == 0) path = path.substr(2);
    e.path = path;
    e.mode = archive_entry_perm(ae) & 07777;
    if (archive_entry_hardlink(ae) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar entry \"", path, "\": hard links are not supported"));
    }
    switch (archive_entry_filetype(ae)) {
      case AE_IFREG: {
        e.type = TarEntry::Type::kFile;
        char buf[kChunk];
        la_ssize_t n;
        while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0)
          e.data.append(buf, static_cast<size_t>(n));
        if (n < 0)
          return absl::InvalidArgumentError(
              absl::StrCat("tar entry \"", path, "\": ", archive_error_string(a.get())));
        break;
      }
      case AE_IFDIR:
        e.type = TarEntry::Type::kDir;
        break;
      case AE_IFLNK:
        e.type = TarEntry::Type::kSymlink;
        e.link = archive_entry_symlink_utf8(ae) ? archive_entry_symlink_utf8(ae) : "";
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("tar entry \"", path, "\": unsupported type"));
    }
    out.push_back(std::move(e));
  }
}

absl::StatusOr<std::string> Gzip(std::string_view data) {
  std::string out;
  GzipStream gz([&](std::string_view b) {
    out.append(b.data(), b.size());
    return absl::OkStatus();
  });
  absl::Status s = gz.Write(data);
  if (s.ok()) s = gz.Finish();
  if (!s.ok()) return s;
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

BlobWriter::BlobWriter(std::string blob_dir) : dir_(std::move(blob_dir)) {
  std::string tmpl = dir_ + "/.tmp-XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd >= 0) {
    fd_ = UniqueFd(fd);
    tmp_ = tmpl;
    ::fchmod(fd, 0644);
  }
}

BlobWriter::~BlobWriter() {
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

absl::Status BlobWriter::Write(std::string_view bytes) {
  if (!fd_) return absl::InternalError(absl::StrCat("blob in ", dir_, ": cannot create a file"));
  hash_.Update(bytes);
  size_ += static_cast<int64_t>(bytes.size());
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("write ", tmp_, ": ", std::strerror(errno)));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<registry::Descriptor> BlobWriter::Finish(std::string media_type) {
  if (!fd_) return absl::InternalError(absl::StrCat("blob in ", dir_, ": cannot create a file"));
  registry::Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = hash_.Digest();
  d.size = size_;
  if (::close(fd_.release()) != 0)
    return absl::InternalError(absl::StrCat("write ", tmp_, ": ", std::strerror(errno)));
  const std::string path = absl::StrCat(dir_, "/", d.digest.substr(7));
  if (::rename(tmp_.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("rename to ", path, ": ", std::strerror(errno)));
  tmp_.clear();
  return d;
}

absl::StatusOr<registry::Descriptor> WriteBlob(const std::string& blob_dir, std::string media_type,
                                               std::string_view bytes) {
  BlobWriter w(blob_dir);
  absl::Status s = w.Write(bytes);
  if (!s.ok()) return s;
  return w.Finish(std::move(media_type));
}

namespace {

// tar bytes in -> diff ID, and gzip of them into a blob.
class LayerSink {
 public:
  explicit LayerSink(const std::string& blob_dir)
      : blob_(blob_dir), gzip_([this](std::string_view b) { return blob_.Write(b); }) {}
  absl::Status Write(std::string_view tar) {
    diff_.Update(tar);
    return gzip_.Write(tar);
  }
  absl::StatusOr<Layer> Finish() {
    absl::Status s = gzip_.Finish();
    if (!s.ok()) return s;
    absl::StatusOr<registry::Descriptor> d = blob_.Finish(registry::kMediaTypeOciLayerGzip);
    if (!d.ok()) return d.status();
    return Layer{std::move(*d), diff_.Digest()};
  }

 private:
  BlobWriter blob_;
  registry::Sha256Hasher diff_;
  GzipStream gzip_;
};

absl::Status WalkAt(const std::shared_ptr<const UniqueFd>& root, int dir_fd, const std::string& rel,
                    const std::string& dest, const std::string& shown, std::vector<TarEntry>* out,
                    int depth) {
  if (depth > 64)
    return absl::InvalidArgumentError(absl::StrCat(shown, "/", rel, ": nested too deeply"));
  int list_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
  if (d == nullptr) {
    if (list_fd >= 0) ::close(list_fd);
    return absl::NotFoundError(absl::StrCat("read ", shown, "/", rel, ": ", std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const std::string& n : names) {
    const std::string path = rel.empty() ? n : rel + "/" + n;
    const std::string show = absl::StrCat(shown, "/", path);
    const std::string to = dest.empty() ? path : dest + "/" + path;
    struct stat st;
    if (::fstatat(dir_fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return absl::NotFoundError(absl::StrCat("stat ", show, ": ", std::strerror(errno)));
    TarEntry e;
    e.path = to;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dir_fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return absl::NotFoundError(absl::StrCat("open ", show, ": ", std::strerror(errno)));
      e.type = TarEntry::Type::kDir;
      e.mode = 0755;
      out->push_back(std::move(e));
      absl::Status s = WalkAt(root, sub.get(), path, dest, shown, out, depth + 1);
      if (!s.ok()) return s;
    } else if (S_ISREG(st.st_mode)) {
      e.type = TarEntry::Type::kFile;
      e.mode = (st.st_mode & S_IXUSR) ? 0755 : 0644;
      e.source_dir = root;
      e.source_path = path;
      e.source_size = st.st_size;
      out->push_back(std::move(e));
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t len = ::readlinkat(dir_fd, n.c_str(), buf, sizeof(buf));
      if (len < 0)
        return absl::NotFoundError(absl::StrCat("readlink ", show, ": ", std::strerror(errno)));
      e.type = TarEntry::Type::kSymlink;
      e.mode = 0777;
      e.link.assign(buf, static_cast<size_t>(len));
      out->push_back(std::move(e));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(show, ": not a file, directory or symlink; cannot go into an image"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Layer> WriteLayer(std::vector<TarEntry> entries, int64_t mtime,
                                 const std::string& blob_dir) {
  LayerSink sink(blob_dir);
  absl::Status s =
      StreamTar(std::move(entries), mtime, [&](std::string_view b) { return sink.Write(b); });
  if (!s.ok()) return s;
  return sink.Finish();
}

absl::StatusOr<Layer> WriteLayerFromTarball(const std::string& tarball,
                                            const std::string& blob_dir) {
  std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
  image::SupportArchiveFilters(a.get());
  archive_read_support_format_raw(a.get());
  archive_entry* ae = nullptr;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("base ", tarball, ": ", why));
  };
  if (archive_read_open_filename(a.get(), tarball.c_str(), kChunk) != ARCHIVE_OK) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("base ", tarball, ": not found"));
    return bad(archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable");
  }
  if (archive_read_next_header(a.get(), &ae) != ARCHIVE_OK) return bad("unreadable");
  LayerSink sink(blob_dir);
  uint64_t total = 0;
  char buf[kChunk];
  while (true) {
    la_ssize_t n = archive_read_data(a.get(), buf, sizeof buf);
    if (n < 0)
      return bad(archive_error_string(a.get()) ? archive_error_string(a.get()) : "corrupt");
    if (n == 0) break;
    // The first block must be a tar header ("ustar" magic, POSIX or GNU).
    if (total == 0 && (n < 512 || std::memcmp(buf + 257, "ustar", 5) != 0))
      return bad("not a tar archive");
    total += static_cast<uint64_t>(n);
    if (total > kMaxBaseBytes) return bad(absl::StrCat("more than ", kMaxBaseBytes, " bytes"));
    absl::Status s = sink.Write(std::string_view(buf, static_cast<size_t>(n)));
    if (!s.ok()) return s;
  }
  if (total < 1024 || total % 512 != 0) return bad("not a tar archive");
  return sink.Finish();
}

absl::Status AddTreeAt(std::shared_ptr<const UniqueFd> dir, const std::string& shown,
                       const std::string& dest, std::vector<TarEntry>* entries) {
  const int fd = dir->get();
  return WalkAt(dir, fd, "", dest, shown, entries, 0);
}

absl::Status AddTree(const std::string& src_dir, const std::string& dest,
                     std::vector<TarEntry>* entries) {
  UniqueFd fd(::open(src_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return absl::NotFoundError(absl::StrCat(src_dir, ": not a directory"));
  return AddTreeAt(std::make_shared<const UniqueFd>(std::move(fd)), src_dir, dest, entries);
}

absl::StatusOr<std::vector<TarEntry>> BusyboxBase(const std::string& busybox) {
  struct stat st;
  if (::stat(busybox.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return absl::NotFoundError(absl::StrCat("base busybox ", busybox, ": not a file"));
  std::vector<TarEntry> out;
  out.push_back({"bin/busybox", TarEntry::Type::kFile, 0755, "", "", nullptr, busybox, st.st_size});
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

}  // namespace faasd::builder
