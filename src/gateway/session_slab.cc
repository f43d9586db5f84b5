#include "gateway/session_slab.h"

#include <sys/mman.h>

#include <cstdint>

namespace faasd::gateway {
namespace {

constexpr size_t kAlign = alignof(std::max_align_t);

constexpr size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

// At the start of its 64 KiB-aligned mapping, so a slot finds its chunk by masking its address.
struct SessionSlab::Chunk {
  void* free_list = nullptr;  // freed slots, each holding the next
  size_t carved = 0;          // slots handed out at least once (the rest were never touched)
  size_t used = 0;
  Chunk* prev = nullptr;  // in partial_
  Chunk* next = nullptr;
  bool listed = false;
};

const size_t SessionSlab::kHeaderBytes = RoundUp(sizeof(Chunk), kAlign);

SessionSlab::SessionSlab(size_t slot_bytes)
    : slot_bytes_(RoundUp(slot_bytes < sizeof(void*) ? sizeof(void*) : slot_bytes, kAlign)),
      slots_per_chunk_((kChunkBytes - kHeaderBytes) / slot_bytes_) {}

SessionSlab::~SessionSlab() {
  // Chunks still holding a slot stay mapped: a session outliving its front end (a bug) then
  // costs memory, not a crash.
  absl::MutexLock l(&mu_);
  if (spare_ != nullptr) ::munmap(spare_, kChunkBytes);
}

size_t SessionSlab::chunks() const {
  absl::MutexLock l(&mu_);
  return chunks_;
}

size_t SessionSlab::used() const {
  absl::MutexLock l(&mu_);
  return used_;
}

SessionSlab::Chunk* SessionSlab::MapChunk() {
  // Twice the size, then the unaligned ends unmapped: the kernel gives no aligned mapping.
  void* raw = ::mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = RoundUp(start, kChunkBytes);
  if (aligned > start) ::munmap(raw, aligned - start);
  const uintptr_t end = start + 2 * kChunkBytes;
  if (end > aligned + kChunkBytes) {
    ::munmap(reinterpret_cast<void*>(aligned + kChunkBytes), end - aligned - kChunkBytes);
  }
  ++chunks_;
  return new (reinterpret_cast<void*>(aligned)) Chunk();
}

void SessionSlab::Link(Chunk* c) {
  c->next = partial_;
  if (partial_ != nullptr) partial_->prev = c;
  partial_ = c;
  c->listed = true;
}

void SessionSlab::Unlink(Chunk* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (partial_ == c) partial_ = c->next;
  c->prev = c->next = nullptr;
  c->listed = false;
}

void* SessionSlab::Allocate() {
  absl::MutexLock l(&mu_);
  Chunk* c = partial_;
  if (c == nullptr) {
    c = spare_ != nullptr ? spare_ : MapChunk();
    spare_ = nullptr;
    Link(c);
  }
  void* slot;
  if (c->free_list != nullptr) {
    slot = c->free_list;
    c->free_list = *static_cast<void**>(slot);
  } else {
    slot = reinterpret_cast<char*>(c) + kHeaderBytes + c->carved * slot_bytes_;
    ++c->carved;
  }
  ++c->used;
  ++used_;
  if (c->used == slots_per_chunk_) Unlink(c);  // full
  return slot;
}

void SessionSlab::Free(void* slot) {
  if (slot == nullptr) return;
  auto* c = reinterpret_cast<Chunk*>(reinterpret_cast<uintptr_t>(slot) & ~(kChunkBytes - 1));
  absl::MutexLock l(&mu_);
  *static_cast<void**>(slot) = c->free_list;
  c->free_list = slot;
  --c->used;
  --used_;
  if (c->used == 0) {
    if (c->listed) Unlink(c);
    if (spare_ == nullptr) {
      // Kept for the next connection, emptied: a fresh chunk carves from the start again.
      c->free_list = nullptr;
      c->carved = 0;
      spare_ = c;
    } else {
      ::munmap(c, kChunkBytes);
      --chunks_;
    }
    return;
  }
  if (!c->listed) Link(c);  // it was full
}

}  // namespace faasd::gateway
