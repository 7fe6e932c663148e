// pprof_agent/checked.h: containers and a checker that catch concurrent
// access the way Go's map flag does, and report both sides.
//
//   pprof_agent::checked_unordered_map<K, V> m;   // drop-in for std::unordered_map
//   pprof_agent::AccessChecker checker{"Cache"};  // for any other class:
//   { pprof_agent::WriteScope w(checker); ... }    //   around mutations
//   { pprof_agent::ReadScope r(checker); ... }     //   around lookups
//
// Semantics (Go's `writing` flag): a write while another thread's write
// section is open is "concurrent map writes"; a read while one is open is
// "concurrent map read and map write"; an iterator increment while one is
// open is "concurrent map iteration and map write". Concurrent reads are
// never reported.
//
// Cost: a read section is two plain loads (no atomic read-modify-write, no
// store). A write section is a few plain loads and stores of the checker's
// own fields: the writer's thread id and the exact code address of the
// section (read from %rip where the scope is inlined), so the other side of a
// race is named without any unwinding on the fast path. The fields are
// std::atomic with relaxed order only so that the check itself is not a data
// race in the C++ sense; relaxed loads and stores compile to plain moves.
//
// Without the agent: the report entry point pprof_agent_race_detected is a
// weak reference. When libpprof_agent.so is not in the process it is null,
// and detections are counted in pprof_agent::UnreportedRaces() only (no
// output, no abort), so the header is safe to ship in code that runs with and
// without the agent. With the agent, PPROF_AGENT_RACES decides:
// report (default: record and count, served at /debug/pprof/races),
// abort (Go's "fatal error: ..." message with both stacks, then abort()), off.
#ifndef PPROF_AGENT_CHECKED_H_
#define PPROF_AGENT_CHECKED_H_

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

extern "C" {
// Kinds and accesses; values are part of the ABI with libpprof_agent.so.
enum { PA_RACE_WRITE_WRITE = 0, PA_RACE_READ_WRITE = 1, PA_RACE_ITER_WRITE = 2 };
enum { PA_ACCESS_READ = 0, PA_ACCESS_WRITE = 1, PA_ACCESS_ITERATE = 2 };
// name: the checker's name, or a mangled type name when name_is_type != 0.
// current_pc: the detecting access; other_tid/other_pc: the open write
// section (thread id and code address recorded when it was entered);
// other_caller: the return address of the function holding that section
// (so the report names the code that called, say, insert_or_assign).
__attribute__((weak, visibility("default"))) void pprof_agent_race_detected(
    const void* checker, const char* name, int name_is_type, int kind,
    int current_access, const void* current_pc, uint32_t other_tid,
    const void* other_pc, const void* other_caller);
}

namespace pprof_agent {

namespace checked_internal {

inline uint32_t ThreadId() {
  static thread_local uint32_t tid = 0;
  if (__builtin_expect(tid == 0, 0)) tid = static_cast<uint32_t>(::syscall(SYS_gettid));
  return tid;
}

inline std::atomic<uint64_t>& Unreported() {
  static std::atomic<uint64_t> n{0};
  return n;
}

}  // namespace checked_internal

// Detections seen while the agent was not in the process.
inline uint64_t UnreportedRaces() {
  return checked_internal::Unreported().load(std::memory_order_relaxed);
}

// The exact code address of the (inlined) caller.
#if defined(__x86_64__)
#define PA_CHECKED_PC()                                  \
  ([]() __attribute__((always_inline)) {                 \
    const void* pc;                                      \
    asm volatile("lea 0(%%rip), %0" : "=r"(pc));         \
    return pc;                                           \
  }())
#else
#define PA_CHECKED_PC() (__builtin_return_address(0))
#endif

class AccessChecker {
 public:
  explicit constexpr AccessChecker(const char* name = "AccessChecker") : name_(name) {}
  // For the wrappers: `type` is typeid(Container), demangled by the agent.
  explicit AccessChecker(const std::type_info& type) : name_(type.name()), name_is_type_(true) {}
  AccessChecker(const AccessChecker&) = delete;
  AccessChecker& operator=(const AccessChecker&) = delete;

  const char* name() const { return name_; }

  __attribute__((always_inline)) void BeginWrite(const void* pc, const void* caller = nullptr) {
    uint32_t me = checked_internal::ThreadId();
    if (__builtin_expect(writing_.load(std::memory_order_relaxed) != 0, 0)) {
      uint32_t other = writer_tid_.load(std::memory_order_relaxed);
      // Nested write sections of the same thread (a wrapper calling itself
      // inside a user's WriteScope) are not races.
      if (other != me) Report(PA_RACE_WRITE_WRITE, PA_ACCESS_WRITE, pc, other);
      else { depth_.store(depth_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); return; }
    }
    writer_tid_.store(me, std::memory_order_relaxed);
    writer_pc_.store(pc, std::memory_order_relaxed);
    writer_caller_.store(caller, std::memory_order_relaxed);
    depth_.store(0, std::memory_order_relaxed);  // a race may have left it set
    writing_.store(1, std::memory_order_relaxed);
  }
  __attribute__((always_inline)) void EndWrite(const void* pc) {
    uint32_t me = checked_internal::ThreadId();
    uint32_t owner = writer_tid_.load(std::memory_order_relaxed);
    if (__builtin_expect(owner != me, 0)) {
      // Another writer entered while we were inside (Go's second check).
      Report(PA_RACE_WRITE_WRITE, PA_ACCESS_WRITE, pc, owner);
      return;
    }
    uint32_t d = depth_.load(std::memory_order_relaxed);
    if (d != 0) { depth_.store(d - 1, std::memory_order_relaxed); return; }
    writing_.store(0, std::memory_order_relaxed);
  }
  __attribute__((always_inline)) void CheckRead(const void* pc, int access = PA_ACCESS_READ) const {
    if (__builtin_expect(writing_.load(std::memory_order_relaxed) != 0, 0)) {
      uint32_t other = writer_tid_.load(std::memory_order_relaxed);
      if (other != checked_internal::ThreadId())
        Report(access == PA_ACCESS_ITERATE ? PA_RACE_ITER_WRITE : PA_RACE_READ_WRITE, access, pc, other);
    }
  }

 private:
  __attribute__((noinline, cold)) void Report(int kind, int access, const void* pc, uint32_t other) const {
    const void* other_pc = writer_pc_.load(std::memory_order_relaxed);
    const void* other_caller = writer_caller_.load(std::memory_order_relaxed);
    if (&pprof_agent_race_detected != nullptr) {
      pprof_agent_race_detected(this, name_, name_is_type_ ? 1 : 0, kind, access, pc, other,
                                other_pc, other_caller);
    } else {
      checked_internal::Unreported().fetch_add(1, std::memory_order_relaxed);
    }
  }

  const char* name_;
  bool name_is_type_ = false;
  std::atomic<uint8_t> writing_{0};
  std::atomic<uint32_t> writer_tid_{0};
  std::atomic<uint32_t> depth_{0};  // touched only by the writer
  std::atomic<const void*> writer_pc_{nullptr};
  std::atomic<const void*> writer_caller_{nullptr};
};

class WriteScope {
 public:
  __attribute__((always_inline)) explicit WriteScope(AccessChecker& c, const void* pc = PA_CHECKED_PC())
      : c_(c), pc_(pc) { c_.BeginWrite(pc_, __builtin_return_address(0)); }
  __attribute__((always_inline)) ~WriteScope() { c_.EndWrite(pc_); }
  WriteScope(const WriteScope&) = delete;
  WriteScope& operator=(const WriteScope&) = delete;

 private:
  AccessChecker& c_;
  const void* pc_;
};

class ReadScope {
 public:
  // Checks on entry and on exit: a write that started inside the read
  // section is caught too.
  __attribute__((always_inline)) explicit ReadScope(const AccessChecker& c, const void* pc = PA_CHECKED_PC())
      : c_(c), pc_(pc) { c_.CheckRead(pc_); }
  __attribute__((always_inline)) ~ReadScope() { c_.CheckRead(pc_); }
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;

 private:
  const AccessChecker& c_;
  const void* pc_;
};

namespace checked_internal {

// Iterator adaptor: every increment/decrement checks for an open write.
template <class It, class Owner>
class CheckedIterator {
 public:
  using iterator_category = typename std::iterator_traits<It>::iterator_category;
  using value_type = typename std::iterator_traits<It>::value_type;
  using difference_type = typename std::iterator_traits<It>::difference_type;
  using pointer = typename std::iterator_traits<It>::pointer;
  using reference = typename std::iterator_traits<It>::reference;

  CheckedIterator() = default;
  CheckedIterator(It it, const AccessChecker* c) : it_(it), c_(c) {}
  // iterator -> const_iterator
  template <class O, class = std::enable_if_t<std::is_convertible_v<O, It>>>
  CheckedIterator(const CheckedIterator<O, Owner>& o) : it_(o.base()), c_(o.checker()) {}

  reference operator*() const { return *it_; }
  pointer operator->() const { return std::addressof(*it_); }
  __attribute__((always_inline)) CheckedIterator& operator++() {
    Check(PA_CHECKED_PC());
    ++it_;
    return *this;
  }
  __attribute__((always_inline)) CheckedIterator operator++(int) {
    Check(PA_CHECKED_PC());
    CheckedIterator t = *this;
    ++it_;
    return t;
  }
  template <class I = It, class = decltype(--std::declval<I&>())>
  CheckedIterator& operator--() {
    Check(PA_CHECKED_PC());
    --it_;
    return *this;
  }
  template <class I = It, class = decltype(--std::declval<I&>())>
  CheckedIterator operator--(int) {
    Check(PA_CHECKED_PC());
    CheckedIterator t = *this;
    --it_;
    return t;
  }
  // Random access (vector).
  template <class I = It, class = decltype(std::declval<I&>() += 1)>
  CheckedIterator& operator+=(difference_type n) { Check(PA_CHECKED_PC()); it_ += n; return *this; }
  template <class I = It, class = decltype(std::declval<I&>() += 1)>
  CheckedIterator& operator-=(difference_type n) { Check(PA_CHECKED_PC()); it_ -= n; return *this; }
  template <class I = It, class = decltype(std::declval<I&>() += 1)>
  friend CheckedIterator operator+(CheckedIterator a, difference_type n) { return a += n; }
  template <class I = It, class = decltype(std::declval<I&>() += 1)>
  friend CheckedIterator operator+(difference_type n, CheckedIterator a) { return a += n; }
  template <class I = It, class = decltype(std::declval<I&>() += 1)>
  friend CheckedIterator operator-(CheckedIterator a, difference_type n) { return a -= n; }
  template <class I = It, class = decltype(std::declval<I&>() - std::declval<I&>())>
  friend difference_type operator-(const CheckedIterator& a, const CheckedIterator& b) { return a.it_ - b.it_; }
  template <class I = It, class = decltype(std::declval<I&>()[0])>
  reference operator[](difference_type n) const { return it_[n]; }
  template <class I = It, class = decltype(std::declval<I&>() < std::declval<I&>())>
  friend bool operator<(const CheckedIterator& a, const CheckedIterator& b) { return a.it_ < b.it_; }
  template <class I = It, class = decltype(std::declval<I&>() < std::declval<I&>())>
  friend bool operator>(const CheckedIterator& a, const CheckedIterator& b) { return a.it_ > b.it_; }
  template <class I = It, class = decltype(std::declval<I&>() < std::declval<I&>())>
  friend bool operator<=(const CheckedIterator& a, const CheckedIterator& b) { return a.it_ <= b.it_; }
  template <class I = It, class = decltype(std::declval<I&>() < std::declval<I&>())>
  friend bool operator>=(const CheckedIterator& a, const CheckedIterator& b) { return a.it_ >= b.it_; }

  template <class O>
  bool operator==(const CheckedIterator<O, Owner>& o) const { return it_ == o.base(); }
  template <class O>
  bool operator!=(const CheckedIterator<O, Owner>& o) const { return it_ != o.base(); }

  const It& base() const { return it_; }
  const AccessChecker* checker() const { return c_; }

 private:
  __attribute__((always_inline)) void Check(const void* pc) const {
    if (c_ != nullptr) c_->CheckRead(pc, PA_ACCESS_ITERATE);
  }
  It it_{};
  const AccessChecker* c_ = nullptr;
};

}  // namespace checked_internal

// The wrappers hold the std container privately and forward the std
// interface; each member opens the section its std counterpart needs.
#define PA_W pprof_agent::WriteScope pa_w_(checker_, PA_CHECKED_PC())
#define PA_R pprof_agent::ReadScope pa_r_(checker_, PA_CHECKED_PC())

// Members shared by every wrapper (Base: the std container).
#define PA_CHECKED_COMMON(Self)                                                           \
 public:                                                                                        \
  using base_type = Base_;                                                                      \
  using value_type = typename Base_::value_type;                                                 \
  using size_type = typename Base_::size_type;                                                   \
  using difference_type = typename Base_::difference_type;                                       \
  using allocator_type = typename Base_::allocator_type;                                         \
  using reference = typename Base_::reference;                                                   \
  using const_reference = typename Base_::const_reference;                                       \
  using pointer = typename Base_::pointer;                                                       \
  using const_pointer = typename Base_::const_pointer;                                           \
  using iterator = checked_internal::CheckedIterator<typename Base_::iterator, Self>;            \
  using const_iterator = checked_internal::CheckedIterator<typename Base_::const_iterator, Self>;\
                                                                                                \
  Self() : checker_(typeid(Base_)) {}                                                            \
  template <class... Args_, class = std::enable_if_t<(sizeof...(Args_) > 0) && std::is_constructible_v<Base_, Args_&&...>>>        \
  explicit Self(Args_&&... a) : c_(std::forward<Args_>(a)...), checker_(typeid(Base_)) {}                \
  Self(std::initializer_list<value_type> il) : c_(il), checker_(typeid(Base_)) {}                \
  Self(const Self& o) : c_(o.Copy()), checker_(typeid(Base_)) {}                                 \
  Self(Self&& o) : c_(o.Take()), checker_(typeid(Base_)) {}                                      \
  Self& operator=(const Self& o) {                                                              \
    if (this != &o) { Base_ t = o.Copy(); PA_W; c_ = std::move(t); }                             \
    return *this;                                                                               \
  }                                                                                             \
  Self& operator=(Self&& o) {                                                                   \
    if (this != &o) { Base_ t = o.Take(); PA_W; c_ = std::move(t); }                             \
    return *this;                                                                               \
  }                                                                                             \
  Self& operator=(std::initializer_list<value_type> il) { PA_W; c_ = il; return *this; }        \
                                                                                                \
  iterator begin() { PA_R; return iterator(c_.begin(), &checker_); }                           \
  const_iterator begin() const { PA_R; return const_iterator(c_.begin(), &checker_); }          \
  const_iterator cbegin() const { return begin(); }                                             \
  iterator end() { return iterator(c_.end(), &checker_); }                                      \
  const_iterator end() const { return const_iterator(c_.end(), &checker_); }                    \
  const_iterator cend() const { return end(); }                                                 \
  bool empty() const { PA_R; return c_.empty(); }                                               \
  size_type size() const { PA_R; return c_.size(); }                                            \
  size_type max_size() const { return c_.max_size(); }                                          \
  allocator_type get_allocator() const { return c_.get_allocator(); }                           \
  void clear() noexcept { PA_W; c_.clear(); }                                                   \
  void swap(Self& o) { PA_W; c_.swap(o.c_); }                                                   \
  friend void swap(Self& a, Self& b) { a.swap(b); }                                             \
  friend bool operator==(const Self& a, const Self& b) { return a.Copy() == b.Copy(); }         \
  friend bool operator!=(const Self& a, const Self& b) { return !(a == b); }                    \
  /* Unchecked access to the std container, for code that does its own checking. */           \
  const Base_& unchecked() const { return c_; }                                                  \
  const AccessChecker& checker() const { return checker_; }                                     \
                                                                                                \
 private:                                                                                       \
  Base_ Copy() const { PA_R; return c_; }                                                        \
  Base_ Take() { PA_W; return std::move(c_); }                                                   \
  Base_ c_;                                                                                      \
  mutable AccessChecker checker_;                                                               \
  iterator It(typename Base_::iterator i) { return iterator(i, &checker_); }                     \
  const_iterator It(typename Base_::const_iterator i) const { return const_iterator(i, &checker_); } \
  template <class P>                                                                            \
  std::pair<iterator, bool> ItB(P p) { return {It(p.first), p.second}; }                        \
                                                                                                \
 public:

// Associative (map, set, unordered_*) members.
#define PA_CHECKED_ASSOC                                                                        \
  using key_type = typename base_type::key_type;                                                \
  template <class... Args_>                                                                         \
  std::pair<iterator, bool> emplace(Args_&&... a) { PA_W; return ItB(c_.emplace(std::forward<Args_>(a)...)); } \
  template <class... Args_>                                                                         \
  iterator emplace_hint(const_iterator h, Args_&&... a) { PA_W; return It(c_.emplace_hint(h.base(), std::forward<Args_>(a)...)); } \
  std::pair<iterator, bool> insert(const value_type& v) { PA_W; return ItB(c_.insert(v)); }     \
  std::pair<iterator, bool> insert(value_type&& v) { PA_W; return ItB(c_.insert(std::move(v))); } \
  iterator insert(const_iterator h, const value_type& v) { PA_W; return It(c_.insert(h.base(), v)); } \
  template <class I_>                                                                            \
  void insert(I_ first, I_ last) { PA_W; c_.insert(first, last); }                               \
  void insert(std::initializer_list<value_type> il) { PA_W; c_.insert(il); }                    \
  iterator erase(const_iterator p) { PA_W; return It(c_.erase(p.base())); }                     \
  iterator erase(const_iterator f, const_iterator l) { PA_W; return It(c_.erase(f.base(), l.base())); } \
  size_type erase(const key_type& k) { PA_W; return c_.erase(k); }                              \
  iterator find(const key_type& k) { PA_R; return It(c_.find(k)); }                             \
  const_iterator find(const key_type& k) const { PA_R; return It(c_.find(k)); }                 \
  size_type count(const key_type& k) const { PA_R; return c_.count(k); }                        \
  bool contains(const key_type& k) const { PA_R; return c_.find(k) != c_.end(); }               \
  std::pair<iterator, iterator> equal_range(const key_type& k) {                                \
    PA_R; auto p = c_.equal_range(k); return {It(p.first), It(p.second)};                       \
  }                                                                                             \
  std::pair<const_iterator, const_iterator> equal_range(const key_type& k) const {              \
    PA_R; auto p = c_.equal_range(k); return {It(p.first), It(p.second)};                       \
  }

// Map members (operator[], at, try_emplace, insert_or_assign).
#define PA_CHECKED_MAP                                                                          \
  using mapped_type = typename base_type::mapped_type;                                          \
  mapped_type& operator[](const key_type& k) { PA_W; return c_[k]; }                            \
  mapped_type& operator[](key_type&& k) { PA_W; return c_[std::move(k)]; }                      \
  mapped_type& at(const key_type& k) { PA_R; return c_.at(k); }                                 \
  const mapped_type& at(const key_type& k) const { PA_R; return c_.at(k); }                     \
  template <class... Args_>                                                                         \
  std::pair<iterator, bool> try_emplace(const key_type& k, Args_&&... a) { PA_W; return ItB(c_.try_emplace(k, std::forward<Args_>(a)...)); } \
  template <class... Args_>                                                                         \
  std::pair<iterator, bool> try_emplace(key_type&& k, Args_&&... a) { PA_W; return ItB(c_.try_emplace(std::move(k), std::forward<Args_>(a)...)); } \
  template <class M_>                                                                            \
  std::pair<iterator, bool> insert_or_assign(const key_type& k, M_&& m) { PA_W; return ItB(c_.insert_or_assign(k, std::forward<M_>(m))); } \
  template <class M_>                                                                            \
  std::pair<iterator, bool> insert_or_assign(key_type&& k, M_&& m) { PA_W; return ItB(c_.insert_or_assign(std::move(k), std::forward<M_>(m))); } \
  template <class P, class = std::enable_if_t<std::is_constructible_v<value_type, P&&>>>        \
  std::pair<iterator, bool> insert(P&& p) { PA_W; return ItB(c_.insert(std::forward<P>(p))); }

#define PA_CHECKED_HASHED                                                                       \
  using hasher = typename base_type::hasher;                                                    \
  using key_equal = typename base_type::key_equal;                                              \
  size_type bucket_count() const { PA_R; return c_.bucket_count(); }                            \
  float load_factor() const { PA_R; return c_.load_factor(); }                                  \
  float max_load_factor() const { PA_R; return c_.max_load_factor(); }                          \
  void max_load_factor(float f) { PA_W; c_.max_load_factor(f); }                                \
  void rehash(size_type n) { PA_W; c_.rehash(n); }                                              \
  void reserve(size_type n) { PA_W; c_.reserve(n); }                                            \
  hasher hash_function() const { return c_.hash_function(); }                                   \
  key_equal key_eq() const { return c_.key_eq(); }

#define PA_CHECKED_ORDERED                                                                      \
  using key_compare = typename base_type::key_compare;                                          \
  using reverse_iterator = std::reverse_iterator<iterator>;                                     \
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;                         \
  reverse_iterator rbegin() { return reverse_iterator(end()); }                                 \
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }               \
  reverse_iterator rend() { return reverse_iterator(begin()); }                                 \
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }               \
  iterator lower_bound(const key_type& k) { PA_R; return It(c_.lower_bound(k)); }               \
  const_iterator lower_bound(const key_type& k) const { PA_R; return It(c_.lower_bound(k)); }   \
  iterator upper_bound(const key_type& k) { PA_R; return It(c_.upper_bound(k)); }               \
  const_iterator upper_bound(const key_type& k) const { PA_R; return It(c_.upper_bound(k)); }   \
  key_compare key_comp() const { return c_.key_comp(); }                                        \
  friend bool operator<(const Self_& a, const Self_& b) { return a.Copy() < b.Copy(); }

template <class K, class V, class H = std::hash<K>, class E = std::equal_to<K>,
          class A = std::allocator<std::pair<const K, V>>>
class checked_unordered_map {
  using Self_ = checked_unordered_map;
  using Base_ = std::unordered_map<K, V, H, E, A>;
  PA_CHECKED_COMMON(checked_unordered_map)
  PA_CHECKED_ASSOC
  PA_CHECKED_MAP
  PA_CHECKED_HASHED
};

template <class K, class V, class C = std::less<K>, class A = std::allocator<std::pair<const K, V>>>
class checked_map {
  using Self_ = checked_map;
  using Base_ = std::map<K, V, C, A>;
  PA_CHECKED_COMMON(checked_map)
  PA_CHECKED_ASSOC
  PA_CHECKED_MAP
  PA_CHECKED_ORDERED
};

template <class K, class H = std::hash<K>, class E = std::equal_to<K>, class A = std::allocator<K>>
class checked_unordered_set {
  using Self_ = checked_unordered_set;
  using Base_ = std::unordered_set<K, H, E, A>;
  PA_CHECKED_COMMON(checked_unordered_set)
  PA_CHECKED_ASSOC
  PA_CHECKED_HASHED
};

template <class K, class C = std::less<K>, class A = std::allocator<K>>
class checked_set {
  using Self_ = checked_set;
  using Base_ = std::set<K, C, A>;
  PA_CHECKED_COMMON(checked_set)
  PA_CHECKED_ASSOC
  PA_CHECKED_ORDERED
};

template <class T, class A = std::allocator<T>>
class checked_vector {
  using Self_ = checked_vector;
  using Base_ = std::vector<T, A>;
  PA_CHECKED_COMMON(checked_vector)
 public:
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }
  // Element access is a read of the container (the element itself is the
  // caller's to synchronise, as with std::vector).
  reference operator[](size_type i) { PA_R; return c_[i]; }
  const_reference operator[](size_type i) const { PA_R; return c_[i]; }
  reference at(size_type i) { PA_R; return c_.at(i); }
  const_reference at(size_type i) const { PA_R; return c_.at(i); }
  reference front() { PA_R; return c_.front(); }
  const_reference front() const { PA_R; return c_.front(); }
  reference back() { PA_R; return c_.back(); }
  const_reference back() const { PA_R; return c_.back(); }
  T* data() { PA_R; return c_.data(); }
  const T* data() const { PA_R; return c_.data(); }
  size_type capacity() const { PA_R; return c_.capacity(); }
  void reserve(size_type n) { PA_W; c_.reserve(n); }
  void shrink_to_fit() { PA_W; c_.shrink_to_fit(); }
  void push_back(const T& v) { PA_W; c_.push_back(v); }
  void push_back(T&& v) { PA_W; c_.push_back(std::move(v)); }
  template <class... Args>
  reference emplace_back(Args&&... a) { PA_W; return c_.emplace_back(std::forward<Args>(a)...); }
  void pop_back() { PA_W; c_.pop_back(); }
  void resize(size_type n) { PA_W; c_.resize(n); }
  void resize(size_type n, const T& v) { PA_W; c_.resize(n, v); }
  void assign(size_type n, const T& v) { PA_W; c_.assign(n, v); }
  template <class I>
  void assign(I f, I l) { PA_W; c_.assign(f, l); }
  iterator insert(const_iterator p, const T& v) { PA_W; return It(c_.insert(p.base(), v)); }
  iterator insert(const_iterator p, T&& v) { PA_W; return It(c_.insert(p.base(), std::move(v))); }
  iterator insert(const_iterator p, size_type n, const T& v) { PA_W; return It(c_.insert(p.base(), n, v)); }
  template <class I, class = typename std::iterator_traits<I>::iterator_category>
  iterator insert(const_iterator p, I f, I l) { PA_W; return It(c_.insert(p.base(), f, l)); }
  template <class... Args>
  iterator emplace(const_iterator p, Args&&... a) { PA_W; return It(c_.emplace(p.base(), std::forward<Args>(a)...)); }
  iterator erase(const_iterator p) { PA_W; return It(c_.erase(p.base())); }
  iterator erase(const_iterator f, const_iterator l) { PA_W; return It(c_.erase(f.base(), l.base())); }
  friend bool operator<(const checked_vector& a, const checked_vector& b) { return a.Copy() < b.Copy(); }
};

#undef PA_CHECKED_COMMON
#undef PA_CHECKED_ASSOC
#undef PA_CHECKED_MAP
#undef PA_CHECKED_HASHED
#undef PA_CHECKED_ORDERED
#undef PA_W
#undef PA_R

}  // namespace pprof_agent

#endif  // PPROF_AGENT_CHECKED_H_
