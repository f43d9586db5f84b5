// Counts how many bytes a layer blob unpacks to, from the compressed stream as it arrives, so a
// pull can stop a decompression bomb (a 1.5 MB layer of a 1.5 GiB file) before containerd
// unpacks it. The format is told by the first bytes: gzip (also concatenated members), zstd, or
// anything else counted as it is (an uncompressed tar). Private to src/image/.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"

namespace faasd::image {

class UncompressedCounter {
 public:
  UncompressedCounter();
  ~UncompressedCounter();
  UncompressedCounter(const UncompressedCounter&) = delete;
  UncompressedCounter& operator=(const UncompressedCounter&) = delete;

  // Feeds the next compressed bytes. InvalidArgument when the stream is corrupt. Stops counting
  // (and returns OK) once `limit` is passed: the caller checks total() against it.
  absl::Status Feed(std::string_view chunk, uint64_t limit);
  uint64_t total() const { return total_; }

 private:
  struct Decoder;
  std::unique_ptr<Decoder> decoder_;
  uint64_t total_ = 0;
  bool started_ = false;
};

}  // namespace faasd::image
