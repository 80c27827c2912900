// ipc_compare: the Boost.Lockfree peers, in a Boost.Interprocess
// managed_shared_memory segment created by the parent before the fork (the
// child uses the inherited mapping, at the same address: boost::lockfree::queue
// keeps raw pointers to its node storage).
//
//   boost_lockfree_spsc  boost::lockfree::spsc_queue<Elem<N>> sized at run
//                        time (the ring's 1 MiB budget), its buffer allocated
//                        in the segment; push() copies the sender's record in,
//                        consume_one() hands the receiver the element in place
//   boost_lockfree_mpmc  boost::lockfree::queue<Elem<N>> with a fixed capacity
//                        (capacity<>: its nodes live inside the queue object);
//                        push() copies in, pop() copies out
//
// Both are wait-free/lock-free without blocking: sender and receiver
// busy-poll (like the _spin rings), checking the stop flag.
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <type_traits>

#include "harness.hpp"

namespace ipc {
namespace {

namespace bip = boost::interprocess;

template <std::size_t N>
struct Elem {
  std::byte b[N];
};

template <class T>
using ShmAlloc = bip::allocator<T, bip::managed_shared_memory::segment_manager>;

template <std::size_t N>
using SpscQueue = boost::lockfree::spsc_queue<Elem<N>, boost::lockfree::allocator<ShmAlloc<Elem<N>>>>;

// Capacity: the 1 MiB budget in elements, 4..16384 (the freelist's 16-bit
// index caps it at 65535).
template <std::size_t N>
constexpr std::size_t kMpmcCapacity = std::clamp<std::size_t>(MiB / N, 4, 16384);
template <std::size_t N>
using MpmcQueue = boost::lockfree::queue<Elem<N>, boost::lockfree::fixed_sized<true>,
                                         boost::lockfree::capacity<kMpmcCapacity<N>>>;

template <std::size_t N, bool Spsc>
struct LfChannel {
  using Queue = std::conditional_t<Spsc, SpscQueue<N>, MpmcQueue<N>>;
  static_assert(std::is_trivially_copyable_v<Elem<N>> && sizeof(Elem<N>) == N);

  std::string name;
  bench::NameGuard guard;
  std::optional<bip::managed_shared_memory> seg;
  Queue* q = nullptr;
  std::size_t depth = 0;

  bool create(const Case& c, std::string* err) {
    if (c.size != N) {
      *err = "element size mismatch";
      return false;
    }
    name = bench::unique_name("blf");
    depth = Spsc ? queue_depth(c, SIZE_MAX) : kMpmcCapacity<N>;
    const std::size_t bytes = (Spsc ? depth * N : sizeof(Queue)) + 2 * MiB;
    try {
      seg.emplace(bip::create_only, name.c_str() + 1, bytes);
      guard.arm(bench::ObjKind::shm, name);
      if constexpr (Spsc) {
        q = seg->construct<Queue>(bip::anonymous_instance)(depth, ShmAlloc<Elem<N>>(seg->get_segment_manager()));
      } else {
        q = seg->construct<Queue>(bip::anonymous_instance)();
        if (!q->is_lock_free()) {
          *err = "boost::lockfree::queue is not lock-free here";
          return false;
        }
      }
    } catch (const std::exception& e) {
      *err = std::string("managed_shared_memory: ") + e.what();
      return false;
    }
    return true;
  }
  void keep_sender() {}
  void keep_receiver() {}
  void unlink_name() { guard.release(); }
};

template <std::size_t N, bool Spsc>
class LfTx {
 public:
  bool open(LfChannel<N, Spsc>& ch, std::string*) {
    q_ = ch.q;
    return true;
  }
  std::byte* begin(std::size_t) {
    // The record's size is known only at run time to the harness, which
    // GCC's -Wstringop-overflow would otherwise check against Elem<8>.
    std::byte* p = elem_.b;
    asm("" : "+r"(p));
    return p;
  }
  bool commit(std::size_t) {
    if (spin_until([&] { return q_->push(elem_); })) return true;
    err_ = "stopped: the peer failed";
    return false;
  }
  bool flush() { return true; }
  const std::string& err() const { return err_; }

 private:
  typename LfChannel<N, Spsc>::Queue* q_ = nullptr;
  Elem<N> elem_;
  std::string err_;
};

template <std::size_t N, bool Spsc>
class LfRx {
 public:
  bool open(LfChannel<N, Spsc>& ch, std::string*) {
    q_ = ch.q;
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    bool accepted = false;
    bool got;
    if constexpr (Spsc) {
      auto on = [&](const Elem<N>& e) { accepted = f(e.b, N); };
      got = spin_until([&] { return q_->consume_one(on); });
    } else {
      got = spin_until([&] { return q_->pop(elem_); });
      if (got) accepted = f(elem_.b, N);
    }
    if (!got) err_ = "stopped: the peer failed";
    return got && accepted;
  }
  const std::string& err() const { return err_; }

 private:
  typename LfChannel<N, Spsc>::Queue* q_ = nullptr;
  Elem<N> elem_;
  std::string err_;
};

template <std::size_t N>
void run_sized(benchmark::State& st, const Case& c) {
  if (c.t->family == Family::boost_lockfree_spsc) {
    run_case<LfChannel<N, true>, LfTx<N, true>, LfRx<N, true>>(st, c);
  } else {
    run_case<LfChannel<N, false>, LfTx<N, false>, LfRx<N, false>>(st, c);
  }
}

}  // namespace

bool boost_lockfree_size(std::size_t size) {
  return size == 8 || size == 64 || size == 512 || size == 4 * KiB || size == 64 * KiB;
}

void run_boost_lockfree(benchmark::State& st, const Case& c) {
  switch (c.size) {
    case 8: return run_sized<8>(st, c);
    case 64: return run_sized<64>(st, c);
    case 512: return run_sized<512>(st, c);
    case 4 * KiB: return run_sized<4 * KiB>(st, c);
    case 64 * KiB: return run_sized<64 * KiB>(st, c);
    default: fail(st, "no element type of this size");
  }
}

}  // namespace ipc
