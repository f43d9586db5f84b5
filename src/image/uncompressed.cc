#include "image/uncompressed.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace faasd::image {

struct UncompressedCounter::Decoder {
  enum class Kind { kPlain, kGzip, kZstd } kind = Kind::kPlain;
  z_stream z{};
  bool z_open = false;
  ZSTD_DStream* zstd = nullptr;
  char scratch[1 << 16];

  ~Decoder() {
    if (z_open) inflateEnd(&z);
    if (zstd != nullptr) ZSTD_freeDStream(zstd);
  }
};

UncompressedCounter::UncompressedCounter() : decoder_(std::make_unique<Decoder>()) {}
UncompressedCounter::~UncompressedCounter() = default;

absl::Status UncompressedCounter::Feed(std::string_view chunk, uint64_t limit) {
  Decoder& d = *decoder_;
  if (!started_ && !chunk.empty()) {
    started_ = true;
    const auto* b = reinterpret_cast<const unsigned char*>(chunk.data());
    if (chunk.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
      d.kind = Decoder::Kind::kGzip;
      if (inflateInit2(&d.z, 15 + 16) != Z_OK) return absl::InternalError("inflateInit2 failed");
      d.z_open = true;
    } else if (chunk.size() >= 4 && std::memcmp(b, "\x28\xb5\x2f\xfd", 4) == 0) {
      d.kind = Decoder::Kind::kZstd;
      d.zstd = ZSTD_createDStream();
      if (d.zstd == nullptr) return absl::InternalError("ZSTD_createDStream failed");
    }
  }
  if (total_ > limit) return absl::OkStatus();
  switch (d.kind) {
    case Decoder::Kind::kPlain:
      total_ += chunk.size();
      return absl::OkStatus();
    case Decoder::Kind::kGzip:
      d.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunk.data()));
      d.z.avail_in = static_cast<uInt>(chunk.size());
      while (d.z.avail_in > 0 && total_ <= limit) {
        d.z.next_out = reinterpret_cast<Bytef*>(d.scratch);
        d.z.avail_out = sizeof d.scratch;
        int rc = inflate(&d.z, Z_NO_FLUSH);
        total_ += sizeof d.scratch - d.z.avail_out;
        if (rc == Z_STREAM_END) {
          inflateReset(&d.z);  // a further gzip member may follow
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
          return absl::InvalidArgumentError(absl::StrCat("corrupt gzip data (zlib ", rc, ")"));
        } else if (rc == Z_BUF_ERROR && d.z.avail_out != 0) {
          break;  // needs more input
        }
      }
      return absl::OkStatus();
    case Decoder::Kind::kZstd: {
      ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
      while (in.pos < in.size && total_ <= limit) {
        ZSTD_outBuffer out{d.scratch, sizeof d.scratch, 0};
        size_t rc = ZSTD_decompressStream(d.zstd, &out, &in);
        if (ZSTD_isError(rc))
          return absl::InvalidArgumentError(
              absl::StrCat("corrupt zstd data (", ZSTD_getErrorName(rc), ")"));
        total_ += out.pos;
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace faasd::image
