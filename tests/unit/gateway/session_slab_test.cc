#include "gateway/session_slab.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "boost/asio/buffer.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "catch.hpp"

using faasd::gateway::InlineBlock;
using faasd::gateway::InlineBlockAllocator;
using faasd::gateway::SessionSlab;
using faasd::gateway::ShrinkIfGrown;
using faasd::gateway::SlabAllocator;

TEST_CASE("SessionSlab hands out distinct aligned slots and unmaps chunks once empty") {
  SessionSlab slab(1500);
  const size_t per_chunk = SessionSlab::kChunkBytes / slab.slot_bytes();
  std::vector<void*> slots;
  for (size_t i = 0; i < 3 * per_chunk; ++i) {
    void* p = slab.Allocate();
    REQUIRE(reinterpret_cast<uintptr_t>(p) % alignof(std::max_align_t) == 0);
    std::memset(p, 0xab, slab.slot_bytes());  // writable, whole
    slots.push_back(p);
  }
  CHECK(slab.used() == slots.size());
  CHECK(slab.chunks() >= 3);
  CHECK(slab.chunks() <= 4);
  std::vector<void*> sorted = slots;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    CHECK(static_cast<char*>(sorted[i]) - static_cast<char*>(sorted[i - 1]) >=
          static_cast<std::ptrdiff_t>(slab.slot_bytes()));
  }

  // Freed in any order, the burst's chunks go back but one, kept for the next connection.
  std::shuffle(slots.begin(), slots.end(), std::mt19937(7));
  for (void* p : slots) slab.Free(p);
  CHECK(slab.used() == 0);
  CHECK(slab.chunks() == 1);
  void* again = slab.Allocate();
  CHECK(slab.chunks() == 1);
  slab.Free(again);
}

struct Session {
  std::array<char, 1500> bytes{};
  int* destroyed;
  explicit Session(int* d) : destroyed(d) {}
  ~Session() { ++*destroyed; }
};

TEST_CASE("allocate_shared with SlabAllocator puts object and counts in one slot") {
  SessionSlab slab(sizeof(Session) + 64);  // the front end's margin (front_end.cc)
  int destroyed = 0;
  {
    auto a = std::allocate_shared<Session>(SlabAllocator<Session>(slab), &destroyed);
    std::weak_ptr<Session> weak = a;
    CHECK(slab.used() == 1);
    auto b = a;
    a.reset();
    CHECK(destroyed == 0);
    b.reset();
    CHECK(destroyed == 1);
    CHECK(slab.used() == 1);  // the counts live on while a weak_ptr does
  }
  CHECK(slab.used() == 0);
  // An object larger than the slot still works, from the heap.
  SessionSlab small(64);
  auto big = std::allocate_shared<Session>(SlabAllocator<Session>(small), &destroyed);
  CHECK(small.used() == 0);
  big.reset();
  CHECK(destroyed == 2);
}

TEST_CASE("SessionSlab takes slots and frees them from many threads at once") {
  SessionSlab slab(512);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&slab, t] {
      std::mt19937 rng(t);
      std::vector<void*> held;
      for (int i = 0; i < 5000; ++i) {
        if (held.empty() || rng() % 3 != 0) {
          held.push_back(slab.Allocate());
          std::memset(held.back(), t, 512);
        } else {
          const size_t k = rng() % held.size();
          slab.Free(held[k]);
          held[k] = held.back();
          held.pop_back();
        }
      }
      for (void* p : held) slab.Free(p);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(slab.used() == 0);
  CHECK(slab.chunks() == 1);
}

TEST_CASE("InlineBlockAllocator lends its block to one allocation that fits at a time") {
  InlineBlock<512> block;
  InlineBlockAllocator<char, 512> alloc(block);
  auto inside = [&](const char* p) { return p >= block.bytes && p < block.bytes + 512; };
  char* a = alloc.allocate(512);
  CHECK(a == block.bytes);
  CHECK(block.lent);
  char* b = alloc.allocate(16);  // lent already: the heap
  CHECK_FALSE(inside(b));
  char* c = alloc.allocate(513);  // too large: the heap
  CHECK_FALSE(inside(c));
  alloc.deallocate(b, 16);
  alloc.deallocate(c, 513);
  CHECK(block.lent);
  alloc.deallocate(a, 512);
  CHECK_FALSE(block.lent);
  // A rebound copy lends the same block.
  InlineBlockAllocator<int, 512> ints(alloc);
  CHECK(ints == alloc);
  int* i = ints.allocate(128);
  CHECK(reinterpret_cast<char*>(i) == block.bytes);
  char* d = alloc.allocate(1);
  CHECK_FALSE(inside(d));
  alloc.deallocate(d, 1);
  ints.deallocate(i, 128);
  CHECK_FALSE(block.lent);
}

TEST_CASE(
    "a flat_buffer on InlineBlockAllocator reads into the block, grows onto the heap and "
    "comes back") {
  InlineBlock<512> block;
  boost::beast::basic_flat_buffer<InlineBlockAllocator<char, 512>> buf{
      InlineBlockAllocator<char, 512>(block)};
  auto in_block = [&] {
    const char* p = static_cast<const char*>(buf.data().data());
    return p >= block.bytes && p < block.bytes + 512;
  };
  const std::string head = "GET / HTTP/1.1\r\n";
  buf.commit(boost::asio::buffer_copy(buf.prepare(512), boost::asio::buffer(head)));
  CHECK(in_block());
  CHECK(block.lent);
  const std::string more(2000, 'x');
  buf.commit(boost::asio::buffer_copy(buf.prepare(2000), boost::asio::buffer(more)));
  CHECK_FALSE(in_block());  // grown: copied to the heap, the block given back
  CHECK_FALSE(block.lent);
  CHECK(buf.size() == head.size() + more.size());
  CHECK(std::string(static_cast<const char*>(buf.data().data()), head.size()) == head);
  buf.consume(buf.size());
  ShrinkIfGrown(buf);  // grown past the block: given back
  CHECK(buf.capacity() == 0);
  buf.commit(boost::asio::buffer_copy(buf.prepare(512), boost::asio::buffer(head)));
  CHECK(in_block());
  buf.consume(buf.size());
  ShrinkIfGrown(buf);  // still in the block: kept for the next read
  CHECK(buf.capacity() == 512);
  CHECK(block.lent);
}
