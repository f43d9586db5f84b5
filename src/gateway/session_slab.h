// Where the front end's sessions live: equal slots packed in 64 KiB chunks that are mapped from
// the kernel when needed and unmapped when their last slot is freed.
//
// Why: made from glibc's heap, the sessions of a burst of connections (1.5 KB each) sit between
// objects that outlive the burst (Boost.Asio keeps every socket's reactor state for reuse), and
// the holes they leave are smaller than a page: neither free() nor malloc_trim() can return
// them, and the daemon kept megabytes after a burst (bench/README.md, "Memory after a burst").
// In chunks of their own they go back once the burst is over, without rounding each session up
// to a page. One chunk is kept spare, so a connection coming and going does not map and unmap.
// Thread-safe: a session may end on any thread holding the last reference.
#pragma once

#include <cstddef>
#include <new>

#include "absl/synchronization/mutex.h"
#include "boost/beast/core/flat_buffer.hpp"

namespace faasd::gateway {

class SessionSlab {
 public:
  static constexpr size_t kChunkBytes = 64 * 1024;

  explicit SessionSlab(size_t slot_bytes);
  ~SessionSlab();  // unmaps the spare chunk; one with a slot still in use stays mapped
  SessionSlab(const SessionSlab&) = delete;
  SessionSlab& operator=(const SessionSlab&) = delete;

  // A slot of slot_bytes, aligned for any object; throws std::bad_alloc when the kernel refuses.
  void* Allocate();
  void Free(void* slot);

  size_t slot_bytes() const { return slot_bytes_; }
  size_t chunks() const;  // mapped, the spare included
  size_t used() const;    // slots handed out

 private:
  struct Chunk;
  static const size_t kHeaderBytes;  // a chunk's header, rounded to alignment: slots follow it

  Chunk* MapChunk() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Link(Chunk* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);    // onto partial_
  void Unlink(Chunk* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // off partial_

  const size_t slot_bytes_;
  const size_t slots_per_chunk_;
  mutable absl::Mutex mu_;
  Chunk* partial_ ABSL_GUARDED_BY(mu_) = nullptr;  // chunks with a free slot (a list)
  Chunk* spare_ ABSL_GUARDED_BY(mu_) = nullptr;    // an empty chunk kept mapped
  size_t chunks_ ABSL_GUARDED_BY(mu_) = 0;
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

// A standard allocator over one SessionSlab, for std::allocate_shared: the one allocation it
// makes (object and reference counts together) takes a slot when it fits, else comes from the
// heap as usual.
template <typename T>
struct SlabAllocator {
  using value_type = T;

  explicit SlabAllocator(SessionSlab& slab) : slab(&slab) {}
  template <typename U>
  SlabAllocator(const SlabAllocator<U>& other) : slab(other.slab) {}  // NOLINT: rebinding

  T* allocate(size_t n) {
    if (Fits(n)) return static_cast<T*>(slab->Allocate());
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) {
    if (Fits(n)) {
      slab->Free(p);
    } else {
      ::operator delete(p);
    }
  }
  template <typename U>
  bool operator==(const SlabAllocator<U>& other) const {
    return slab == other.slab;
  }
  template <typename U>
  bool operator!=(const SlabAllocator<U>& other) const {
    return slab != other.slab;
  }

  SessionSlab* slab;

 private:
  bool Fits(size_t n) const {
    return n * sizeof(T) <= slab->slot_bytes() && alignof(T) <= alignof(std::max_align_t);
  }
};

// A few hundred bytes inside the object that owns them (a session, so in the slab above), lent
// by InlineBlockAllocator to the first allocation that fits while it is not lent.
template <size_t N>
struct InlineBlock {
  alignas(std::max_align_t) char bytes[N];
  bool lent = false;
};

// A standard allocator for a buffer that usually stays small (a session's read buffer, a
// flat_buffer that keeps its storage between requests): an allocation of up to N bytes takes
// the block when it is free, a larger one, or one made while the block is lent, comes from the
// heap. So a connection's buffer lives and dies with its session instead of staying behind as
// a small hole in the heap. Not thread-safe: the block belongs to one owner.
template <typename T, size_t N>
struct InlineBlockAllocator {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = InlineBlockAllocator<U, N>;
  };

  explicit InlineBlockAllocator(InlineBlock<N>& block) : block(&block) {}
  template <typename U>
  InlineBlockAllocator(const InlineBlockAllocator<U, N>& other)  // NOLINT: rebinding
      : block(other.block) {}

  T* allocate(size_t n) {
    if (!block->lent && n * sizeof(T) <= N && alignof(T) <= alignof(std::max_align_t)) {
      block->lent = true;
      return reinterpret_cast<T*>(block->bytes);
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) {
    if (reinterpret_cast<char*>(p) == block->bytes) {
      block->lent = false;
    } else {
      ::operator delete(p);
    }
  }
  template <typename U>
  bool operator==(const InlineBlockAllocator<U, N>& other) const {
    return block == other.block;
  }
  template <typename U>
  bool operator!=(const InlineBlockAllocator<U, N>& other) const {
    return block != other.block;
  }

  InlineBlock<N>* block;
};

// Gives an empty buffer's storage back when it has grown past its inline block (a long head, a
// body read through it); one still in its block keeps it for the next read.
template <size_t N>
void ShrinkIfGrown(boost::beast::basic_flat_buffer<InlineBlockAllocator<char, N>>& buffer) {
  if (buffer.size() == 0 && buffer.capacity() > N) buffer.shrink_to_fit();
}

}  // namespace faasd::gateway
