// Container classification of heap stacks; see container_classifier.h.
//
// How a stack is read. Frames are taken leaf first (inlined frames included)
// while they are library code: that run is the allocation path, and the
// first frame after it is the user function responsible (container_site).
// Inside the run, each frame's scope ("std::_Hashtable") and method
// ("_M_rehash") are looked up in kContainerPatterns. The innermost matching
// frame decides which container owns the allocation; outer frames of the
// same container refine it (a public wrapper names the exact family, an
// insert path turns a bucket array into a rehash). Element construction
// (construct_at, allocator_traits::construct) ends the owner's frames: past
// it is the container that holds the element, e.g. the vector whose
// emplace_back built the string that allocated.
#include "profiler/heap/container_classifier.h"

#include <array>
#include <unordered_map>

#include "profiler/symbols/symbolizer.h"

namespace pprof_agent::internal {
namespace {

// Which container a pattern belongs to: a frame refines the owner only if it
// belongs to the same group.
enum class Group {
  kNone,
  kConstruct,  // element construction: ends the owner's frames
  kStdHash,
  kStdTree,
  kStdVector,
  kStdDeque,
  kStdString,
  kStdList,
  kStdForwardList,
  kAbslHash,
  kBoostHash,
};

// How a pattern names the family.
enum class FamilyRule {
  kNone,          // says nothing about the family
  kFixed,         // `family`
  kStdHashtable,  // _Hashtable-like args: _Select1st/_Identity, traits' unique
  kStdHashNode,   // _Hash_node<std::pair<K const, V>...>: a map, else a set
  kStdRbTree,     // _Rb_tree args: _Select1st -> map, _Identity -> set
  kStdRbTreeMulti,  // the same, on an _M_*_equal path: multimap/multiset
  kAbslPolicy,    // the FlatHashMapPolicy/NodeHashSetPolicy/... named in args
  kBoostTable,    // table<detail::map<...>> or table<detail::set<...>>
  kBoostNode,     // ptr_node<std::pair<K const, V>>: a map, else a set
};

// How a pattern changes the op.
enum class OpRule {
  kNone,
  kSet,           // op = `op` if `level` is above the current op's level
  kBucketsOnly,   // the same, but only when the op is buckets or rehash
};

struct ContainerPattern {
  Group group;
  const char* scope;   // normalized: inline namespaces and template args dropped
  const char* method;  // nullptr: any method (and constructors)
  FamilyRule family_rule;
  const char* family;  // for kFixed
  int family_level;    // 1 guess, 2 from the internal type, 3 exact
  OpRule op_rule;
  const char* op;
  int op_level;
};

// THE table. One line per pattern; tests/profiler/heap/container_classifier_test
// has a real g++ 12 frame name for each line.
constexpr ContainerPattern kContainerPatterns[] = {
    // --- element construction: ends the owner container's frames ---------
    {Group::kConstruct, "std", "construct_at", FamilyRule::kNone, nullptr, 0, OpRule::kNone, nullptr, 0},
    {Group::kConstruct, "std", "_Construct", FamilyRule::kNone, nullptr, 0, OpRule::kNone, nullptr, 0},
    {Group::kConstruct, "std::allocator_traits", "construct", FamilyRule::kNone, nullptr, 0, OpRule::kNone, nullptr, 0},

    // --- std::unordered_{map,multimap,set,multiset} (std::_Hashtable) ------
    {Group::kStdHash, "std::__detail::_Hashtable_alloc", "_M_allocate_buckets", FamilyRule::kStdHashNode, nullptr, 1, OpRule::kSet, "buckets", 1},
    {Group::kStdHash, "std::__detail::_Hashtable_alloc", "_M_allocate_node", FamilyRule::kStdHashNode, nullptr, 1, OpRule::kSet, "node", 2},
    {Group::kStdHash, "std::_Hashtable", "_M_allocate_buckets", FamilyRule::kStdHashtable, nullptr, 2, OpRule::kSet, "buckets", 1},
    {Group::kStdHash, "std::_Hashtable", "_M_rehash", FamilyRule::kStdHashtable, nullptr, 2, OpRule::kBucketsOnly, "rehash", 2},
    {Group::kStdHash, "std::_Hashtable", "_M_rehash_aux", FamilyRule::kStdHashtable, nullptr, 2, OpRule::kBucketsOnly, "rehash", 2},
    {Group::kStdHash, "std::_Hashtable", "rehash", FamilyRule::kStdHashtable, nullptr, 2, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kStdHash, "std::_Hashtable", nullptr, FamilyRule::kStdHashtable, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::__detail::_Rehash_base", "reserve", FamilyRule::kStdHashtable, nullptr, 2, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kStdHash, "std::__detail::_Map_base", nullptr, FamilyRule::kStdHashtable, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::__detail::_Insert_base", nullptr, FamilyRule::kStdHashtable, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::__detail::_Insert", nullptr, FamilyRule::kStdHashtable, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::unordered_map", "reserve", FamilyRule::kFixed, "std::unordered_map", 3, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kStdHash, "std::unordered_map", "rehash", FamilyRule::kFixed, "std::unordered_map", 3, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kStdHash, "std::unordered_map", nullptr, FamilyRule::kFixed, "std::unordered_map", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::unordered_multimap", nullptr, FamilyRule::kFixed, "std::unordered_multimap", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::unordered_set", "reserve", FamilyRule::kFixed, "std::unordered_set", 3, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kStdHash, "std::unordered_set", "rehash", FamilyRule::kFixed, "std::unordered_set", 3, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kStdHash, "std::unordered_set", nullptr, FamilyRule::kFixed, "std::unordered_set", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdHash, "std::unordered_multiset", nullptr, FamilyRule::kFixed, "std::unordered_multiset", 3, OpRule::kNone, nullptr, 0},

    // --- std::{map,multimap,set,multiset} (std::_Rb_tree) -----------------
    {Group::kStdTree, "std::_Rb_tree", "_M_get_node", FamilyRule::kStdRbTree, nullptr, 2, OpRule::kSet, "node", 2},
    {Group::kStdTree, "std::_Rb_tree", "_M_insert_equal", FamilyRule::kStdRbTreeMulti, nullptr, 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::_Rb_tree", "_M_insert_equal_", FamilyRule::kStdRbTreeMulti, nullptr, 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::_Rb_tree", "_M_insert_equal_lower", FamilyRule::kStdRbTreeMulti, nullptr, 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::_Rb_tree", "_M_emplace_equal", FamilyRule::kStdRbTreeMulti, nullptr, 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::_Rb_tree", "_M_emplace_hint_equal", FamilyRule::kStdRbTreeMulti, nullptr, 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::_Rb_tree", nullptr, FamilyRule::kStdRbTree, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::map", nullptr, FamilyRule::kFixed, "std::map", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::multimap", nullptr, FamilyRule::kFixed, "std::multimap", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::set", nullptr, FamilyRule::kFixed, "std::set", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdTree, "std::multiset", nullptr, FamilyRule::kFixed, "std::multiset", 3, OpRule::kNone, nullptr, 0},

    // --- std::vector --------------------------------------------------------
    {Group::kStdVector, "std::_Vector_base", "_M_allocate", FamilyRule::kFixed, "std::vector", 2, OpRule::kSet, "alloc", 1},
    {Group::kStdVector, "std::vector", "_M_realloc_insert", FamilyRule::kFixed, "std::vector", 3, OpRule::kSet, "grow", 2},
    {Group::kStdVector, "std::vector", "_M_default_append", FamilyRule::kFixed, "std::vector", 3, OpRule::kSet, "grow", 2},
    {Group::kStdVector, "std::vector", "_M_fill_insert", FamilyRule::kFixed, "std::vector", 3, OpRule::kSet, "grow", 2},
    {Group::kStdVector, "std::vector", "_M_range_insert", FamilyRule::kFixed, "std::vector", 3, OpRule::kSet, "grow", 2},
    {Group::kStdVector, "std::vector", "reserve", FamilyRule::kFixed, "std::vector", 3, OpRule::kSet, "reserve", 2},
    {Group::kStdVector, "std::vector", nullptr, FamilyRule::kFixed, "std::vector", 3, OpRule::kNone, nullptr, 0},

    // --- std::deque ---------------------------------------------------------
    {Group::kStdDeque, "std::_Deque_base", "_M_allocate_node", FamilyRule::kFixed, "std::deque", 2, OpRule::kSet, "node", 2},
    {Group::kStdDeque, "std::_Deque_base", "_M_allocate_map", FamilyRule::kFixed, "std::deque", 2, OpRule::kSet, "alloc", 1},
    {Group::kStdDeque, "std::deque", "_M_reallocate_map", FamilyRule::kFixed, "std::deque", 3, OpRule::kSet, "grow", 2},
    {Group::kStdDeque, "std::deque", nullptr, FamilyRule::kFixed, "std::deque", 3, OpRule::kNone, nullptr, 0},

    // --- std::basic_string (std::__cxx11::basic_string; _Rep: the old ABI,
    // whose std::string/std::wstring abbreviations Parse() expands) --------
    {Group::kStdString, "std::basic_string", "_M_create", FamilyRule::kFixed, "std::basic_string", 3, OpRule::kSet, "alloc", 1},
    {Group::kStdString, "std::basic_string::_Rep", "_S_create", FamilyRule::kFixed, "std::basic_string", 3, OpRule::kSet, "alloc", 1},
    {Group::kStdString, "std::basic_string", "_M_mutate", FamilyRule::kFixed, "std::basic_string", 3, OpRule::kSet, "grow", 2},
    {Group::kStdString, "std::basic_string", "reserve", FamilyRule::kFixed, "std::basic_string", 3, OpRule::kSet, "reserve", 2},
    {Group::kStdString, "std::basic_string", nullptr, FamilyRule::kFixed, "std::basic_string", 3, OpRule::kNone, nullptr, 0},

    // --- std::list, std::forward_list ---------------------------------------
    {Group::kStdList, "std::_List_base", "_M_get_node", FamilyRule::kFixed, "std::list", 2, OpRule::kSet, "node", 2},
    {Group::kStdList, "std::list", nullptr, FamilyRule::kFixed, "std::list", 3, OpRule::kNone, nullptr, 0},
    {Group::kStdForwardList, "std::_Fwd_list_base", "_M_get_node", FamilyRule::kFixed, "std::forward_list", 2, OpRule::kSet, "node", 2},
    {Group::kStdForwardList, "std::forward_list", nullptr, FamilyRule::kFixed, "std::forward_list", 3, OpRule::kNone, nullptr, 0},

    // --- absl::{flat,node}_hash_{map,set} (absl::container_internal) --------
    {Group::kAbslHash, "absl::container_internal::raw_hash_set", "initialize_slots", FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kSet, "buckets", 1},
    {Group::kAbslHash, "absl::container_internal::raw_hash_set", "rehash_and_grow_if_necessary", FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kBucketsOnly, "rehash", 2},
    {Group::kAbslHash, "absl::container_internal::raw_hash_set", "reserve", FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kAbslHash, "absl::container_internal::raw_hash_set", "rehash", FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kAbslHash, "absl::container_internal::raw_hash_set", nullptr, FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kAbslHash, "absl::container_internal::raw_hash_map", nullptr, FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kAbslHash, "absl::container_internal::NodeHashMapPolicy", "new_element", FamilyRule::kFixed, "absl::node_hash_map", 2, OpRule::kSet, "node", 2},
    {Group::kAbslHash, "absl::container_internal::NodeHashSetPolicy", "new_element", FamilyRule::kFixed, "absl::node_hash_set", 2, OpRule::kSet, "node", 2},
    {Group::kAbslHash, "absl::container_internal::node_slot_policy", nullptr, FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kAbslHash, "absl::container_internal::hash_policy_traits", nullptr, FamilyRule::kAbslPolicy, nullptr, 2, OpRule::kNone, nullptr, 0},

    // --- boost::unordered_{map,multimap,set,multiset} -----------------------
    {Group::kBoostHash, "boost::unordered::detail::table", "create_buckets", FamilyRule::kBoostTable, nullptr, 2, OpRule::kSet, "buckets", 1},
    {Group::kBoostHash, "boost::unordered::detail::table", "reserve_for_insert", FamilyRule::kBoostTable, nullptr, 2, OpRule::kBucketsOnly, "rehash", 2},
    {Group::kBoostHash, "boost::unordered::detail::table", "resize_and_add_node_unique", FamilyRule::kBoostTable, nullptr, 2, OpRule::kBucketsOnly, "rehash", 2},
    {Group::kBoostHash, "boost::unordered::detail::table", "rehash", FamilyRule::kBoostTable, nullptr, 2, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kBoostHash, "boost::unordered::detail::table", nullptr, FamilyRule::kBoostTable, nullptr, 2, OpRule::kNone, nullptr, 0},
    {Group::kBoostHash, "boost::unordered::detail::node_constructor", "create_node", FamilyRule::kBoostNode, nullptr, 1, OpRule::kSet, "node", 2},
    {Group::kBoostHash, "boost::unordered::unordered_map", "reserve", FamilyRule::kFixed, "boost::unordered_map", 3, OpRule::kBucketsOnly, "buckets", 3},
    {Group::kBoostHash, "boost::unordered::unordered_map", nullptr, FamilyRule::kFixed, "boost::unordered_map", 3, OpRule::kNone, nullptr, 0},
    {Group::kBoostHash, "boost::unordered::unordered_multimap", nullptr, FamilyRule::kFixed, "boost::unordered_multimap", 3, OpRule::kNone, nullptr, 0},
    {Group::kBoostHash, "boost::unordered::unordered_set", nullptr, FamilyRule::kFixed, "boost::unordered_set", 3, OpRule::kNone, nullptr, 0},
    {Group::kBoostHash, "boost::unordered::unordered_multiset", nullptr, FamilyRule::kFixed, "boost::unordered_multiset", 3, OpRule::kNone, nullptr, 0},
};

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// If `s` has "operator" at `i` (as a whole word), the index just past the
// operator's spelling ("operator<<", "operator()", "operator new[]"), else i.
size_t SkipOperator(std::string_view s, size_t i) {
  constexpr std::string_view kOp = "operator";
  if (s.compare(i, kOp.size(), kOp) != 0) return i;
  if (i > 0 && IsIdentChar(s[i - 1])) return i;
  size_t j = i + kOp.size();
  if (j < s.size() && IsIdentChar(s[j])) return i;  // "operatorX" is a name
  if (j < s.size() && s[j] == ' ') {
    // operator new / delete / a conversion to a simple type name.
    ++j;
    while (j < s.size() && (IsIdentChar(s[j]) || s[j] == ':')) ++j;
    if (s.compare(j, 2, "[]") == 0) j += 2;
    return j;
  }
  if (s.compare(j, 2, "()") == 0 || s.compare(j, 2, "[]") == 0) return j + 2;
  // The longest operator token, so that "operator+<char>" keeps its
  // template argument list and "operator<<" stays one token.
  static constexpr std::string_view kTokens[] = {
      "<<=", ">>=", "<=>", "->*", "<<", ">>", "<=", ">=", "==", "!=", "&&",
      "||",  "++",  "--",  "->",  "+=", "-=", "*=", "/=", "%=", "^=", "&=",
      "|=",  "<",   ">",   "+",   "-",  "*",  "/",  "%",  "^",  "&",  "|",
      "~",   "!",   "=",   ",",
  };
  for (std::string_view token : kTokens) {
    if (s.compare(j, token.size(), token) == 0) return j + token.size();
  }
  return j;
}

// Splits at depth 0 on "::" into components; brackets of every kind nest.
std::vector<std::string_view> SplitScopes(std::string_view q) {
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < q.size();) {
    if (depth == 0) {
      const size_t after = SkipOperator(q, i);
      if (after != i) {
        i = after;
        continue;
      }
    }
    const char c = q[i];
    if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
    if ((c == '>' || c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    if (depth == 0 && c == ':' && i + 1 < q.size() && q[i + 1] == ':') {
      parts.push_back(q.substr(start, i - start));
      i += 2;
      start = i;
      continue;
    }
    ++i;
  }
  parts.push_back(q.substr(start));
  return parts;
}

// "vector<int, std::allocator<int> >" -> base "vector", args "int, std::...";
// "operator()<int>" -> base "operator()", args "int".
void SplitTemplate(std::string_view component, std::string_view* base,
                   std::string_view* args) {
  const size_t lt = component.find('<', SkipOperator(component, 0));
  if (lt == std::string_view::npos) {
    *base = component;
    *args = {};
    return;
  }
  *base = component.substr(0, lt);
  const size_t gt = component.rfind('>');
  *args = gt == std::string_view::npos || gt <= lt
              ? std::string_view()
              : component.substr(lt + 1, gt - lt - 1);
}

// Inline namespaces that say nothing about the container:
// std::__cxx11, std::__1 (libc++), absl::lts_2023..., absl::debian3.
bool IsInlineNamespace(std::string_view prev, std::string_view name) {
  if (name == "__cxx11" || name == "__1" || name == "__debug") return true;
  if (prev == "absl" && (StartsWith(name, "lts_") || StartsWith(name, "debian"))) {
    return true;
  }
  return false;
}

// Top-level template arguments of `args`.
std::vector<std::string_view> SplitArgs(std::string_view args) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const char c = args[i];
    if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
    if ((c == '>' || c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    if (depth == 0 && c == ',') {
      out.push_back(Trim(args.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (!Trim(args.substr(start)).empty()) out.push_back(Trim(args.substr(start)));
  return out;
}

// One frame, parsed once.
struct ParsedFrame {
  std::string qualified;  // QualifiedFunctionName
  std::string scope;      // normalized: "std::_Hashtable"
  std::string method;     // "_M_rehash"
  std::string args;       // template args of the innermost templated scope
  bool library = false;
};

ParsedFrame Parse(std::string_view demangled) {
  ParsedFrame f;
  f.qualified = QualifiedFunctionName(demangled);
  const std::string_view q = f.qualified;
  std::vector<std::string_view> parts = SplitScopes(q);
  std::string_view last_base;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view base, args;
    SplitTemplate(parts[i], &base, &args);
    if (i + 1 == parts.size()) {
      f.method = std::string(base);
      break;
    }
    if (IsInlineNamespace(last_base, base)) continue;
    if (!f.scope.empty()) f.scope += "::";
    // The demangler abbreviates the old ABI's std::basic_string<char> (Ss).
    if (f.scope == "std::" && (base == "string" || base == "wstring")) base = "basic_string";
    f.scope += base;
    last_base = base;
    if (!args.empty()) f.args = std::string(args);
  }
  static constexpr std::string_view kLibraryPrefixes[] = {
      "std::", "__gnu_cxx::", "__cxxabiv1::", "absl::", "boost::",
      "pprof_agent::", "operator new", "operator delete", "__libc_",
  };
  for (std::string_view p : kLibraryPrefixes) {
    if (StartsWith(q, p)) f.library = true;
  }
  static constexpr std::string_view kAllocFunctions[] = {
      "malloc", "calloc", "realloc", "reallocarray", "free", "memalign",
      "posix_memalign", "aligned_alloc", "valloc", "pvalloc",
  };
  for (std::string_view fn : kAllocFunctions) {
    if (q == fn) f.library = true;
  }
  return f;
}

bool MethodMatches(const ContainerPattern& p, const ParsedFrame& f) {
  if (p.method == nullptr) return true;
  return f.method == p.method;
}

// The family a pattern names for this frame, or "" if it cannot tell.
std::string FamilyOf(const ContainerPattern& p, const ParsedFrame& f) {
  switch (p.family_rule) {
    case FamilyRule::kNone:
      return "";
    case FamilyRule::kFixed:
      return p.family;
    case FamilyRule::kStdHashtable: {
      // _Hashtable<Key, Value, Alloc, ExtractKey, Equal, Hash, ..., Traits>;
      // _Map_base/_Insert/_Rehash_base have the same leading arguments.
      const std::vector<std::string_view> args = SplitArgs(f.args);
      if (args.size() < 4) return "";
      bool map;
      if (StartsWith(args[3], "std::__detail::_Select1st")) {
        map = true;
      } else if (StartsWith(args[3], "std::__detail::_Identity")) {
        map = false;
      } else {
        return "";
      }
      bool unique = true;
      for (std::string_view a : args) {
        if (StartsWith(a, "std::__detail::_Hashtable_traits<")) {
          unique = a.size() >= 5 && a.substr(a.size() - 5) == "true>";
        }
      }
      if (map) return unique ? "std::unordered_map" : "std::unordered_multimap";
      return unique ? "std::unordered_set" : "std::unordered_multiset";
    }
    case FamilyRule::kStdHashNode:
      // allocator<_Hash_node<std::pair<K const, V>, cached> >
      if (f.args.find("_Hash_node<std::pair<") != std::string::npos &&
          f.args.find(" const,") != std::string::npos) {
        return "std::unordered_map";
      }
      return f.args.find("_Hash_node<") != std::string::npos ? "std::unordered_set" : "";
    case FamilyRule::kStdRbTree:
    case FamilyRule::kStdRbTreeMulti: {
      const std::vector<std::string_view> args = SplitArgs(f.args);
      if (args.size() < 3) return "";
      const bool multi = p.family_rule == FamilyRule::kStdRbTreeMulti;
      if (StartsWith(args[2], "std::_Select1st<")) return multi ? "std::multimap" : "std::map";
      if (StartsWith(args[2], "std::_Identity<")) return multi ? "std::multiset" : "std::set";
      return "";
    }
    case FamilyRule::kAbslPolicy: {
      static constexpr std::array<std::pair<const char*, const char*>, 4> kPolicies = {{
          {"FlatHashMapPolicy<", "absl::flat_hash_map"},
          {"FlatHashSetPolicy<", "absl::flat_hash_set"},
          {"NodeHashMapPolicy<", "absl::node_hash_map"},
          {"NodeHashSetPolicy<", "absl::node_hash_set"},
      }};
      size_t best = std::string::npos;
      const char* family = "";
      for (const auto& [needle, name] : kPolicies) {
        const size_t at = f.args.find(needle);
        if (at < best) {
          best = at;
          family = name;
        }
      }
      return family;
    }
    case FamilyRule::kBoostTable:
      if (StartsWith(f.args, "boost::unordered::detail::map<")) return "boost::unordered_map";
      if (StartsWith(f.args, "boost::unordered::detail::set<")) return "boost::unordered_set";
      return "";
    case FamilyRule::kBoostNode:
      if (f.args.find("ptr_node<std::pair<") != std::string::npos &&
          f.args.find(" const,") != std::string::npos) {
        return "boost::unordered_map";
      }
      return "boost::unordered_set";
  }
  return "";
}

// Parsed frames by name: stacks share most of their frames.
class FrameCache {
 public:
  const ParsedFrame& Get(const std::string& name) {
    auto it = cache_.find(name);
    if (it == cache_.end()) it = cache_.emplace(name, Parse(name)).first;
    return it->second;
  }

 private:
  std::unordered_map<std::string, ParsedFrame> cache_;
};

ContainerInfo Classify(const std::vector<std::string>& frames, FrameCache& cache) {
  ContainerInfo info;
  Group owner = Group::kNone;
  bool owner_closed = false;  // an element-construction frame was passed
  int family_level = 0;
  int op_level = 0;
  for (const std::string& name : frames) {
    const ParsedFrame& f = cache.Get(name);
    if (!f.library) {
      if (!info.family.empty()) info.site = f.qualified;
      break;
    }
    if (owner_closed) continue;
    for (const ContainerPattern& p : kContainerPatterns) {
      if (f.scope != p.scope || !MethodMatches(p, f)) continue;
      if (p.group == Group::kConstruct) {
        if (owner != Group::kNone) owner_closed = true;
        break;
      }
      if (owner == Group::kNone) owner = p.group;
      if (p.group != owner) {
        owner_closed = true;  // a different container holds this one
        break;
      }
      const std::string family = FamilyOf(p, f);
      if (!family.empty() && p.family_level > family_level) {
        info.family = family;
        family_level = p.family_level;
      }
      if (p.op_rule != OpRule::kNone && p.op_level > op_level &&
          (p.op_rule == OpRule::kSet || info.op == "buckets" || info.op == "rehash")) {
        info.op = p.op;
        op_level = p.op_level;
      }
    }
  }
  if (info.family.empty()) return ContainerInfo{};
  return info;
}

}  // namespace

std::string QualifiedFunctionName(std::string_view s) {
  s = Trim(s);
  // " [clone .cold]", " [clone .constprop.0]"...
  while (!s.empty() && s.back() == ']') {
    const size_t open = s.rfind(" [clone ");
    if (open == std::string_view::npos) break;
    s = Trim(s.substr(0, open));
  }
  // A symbol version from a dynamic symbol table: "...)@@GLIBCXX_3.4".
  if (const size_t at = s.find('@'); at != std::string_view::npos &&
                                      s.find(')', at) == std::string_view::npos) {
    s = Trim(s.substr(0, at));
  }
  // Trailing qualifiers of a member function.
  for (bool changed = true; changed;) {
    changed = false;
    for (std::string_view q : {" const", " volatile", " &&", " &"}) {
      if (s.size() > q.size() && s.substr(s.size() - q.size()) == q) {
        s.remove_suffix(q.size());
        changed = true;
      }
    }
    if (!s.empty() && s.back() == '&' && s.size() > 1 && s[s.size() - 2] == ')') {
      s.remove_suffix(1);
      changed = true;
    }
  }
  // The parameter list: the parenthesis matching the final ')'.
  if (!s.empty() && s.back() == ')') {
    int depth = 0;
    for (size_t i = s.size(); i-- > 0;) {
      if (s[i] == ')') ++depth;
      if (s[i] == '(' && --depth == 0) {
        // "operator()" is a name, not the parameter list: keep it.
        s = s.substr(0, i);
        break;
      }
    }
  }
  // The return type: everything up to the last space at depth 0.
  int depth = 0;
  size_t name_start = 0;
  for (size_t i = 0; i < s.size();) {
    if (depth == 0) {
      const size_t after = SkipOperator(s, i);
      if (after != i) {
        i = after;
        continue;
      }
    }
    const char c = s[i];
    if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
    if ((c == '>' || c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    if (depth == 0 && c == ' ') name_start = i + 1;
    ++i;
  }
  return std::string(Trim(s.substr(name_start)));
}

bool IsLibraryFrame(std::string_view demangled) {
  return Parse(demangled).library;
}

std::vector<std::string> ContainerPatternKeys() {
  std::vector<std::string> keys;
  for (const ContainerPattern& p : kContainerPatterns) {
    keys.push_back(std::string(p.scope) + "|" + (p.method ? p.method : "*"));
  }
  return keys;
}

std::vector<std::string> MatchingContainerPatterns(std::string_view demangled) {
  const ParsedFrame f = Parse(demangled);
  std::vector<std::string> keys;
  for (const ContainerPattern& p : kContainerPatterns) {
    if (f.scope == p.scope && MethodMatches(p, f)) {
      keys.push_back(std::string(p.scope) + "|" + (p.method ? p.method : "*"));
    }
  }
  return keys;
}

ContainerInfo ClassifyFrames(const std::vector<std::string>& frames) {
  FrameCache cache;
  return Classify(frames, cache);
}

void AddContainerLabels(
    Snapshot* snapshot,
    const std::function<std::vector<std::string>(uint64_t)>& symbolize) {
  FrameCache cache;
  std::unordered_map<uint64_t, std::vector<std::string>> names_by_pc;
  std::vector<int8_t> done(snapshot->stacks.size(), 0);
  std::vector<ContainerInfo> infos(snapshot->stacks.size());
  for (Sample& sample : snapshot->samples) {
    if (sample.stack >= snapshot->stacks.size()) continue;
    if (!done[sample.stack]) {
      done[sample.stack] = 1;
      const Stack& stack = snapshot->stacks[sample.stack];
      std::vector<std::string> frames;
      for (size_t i = 0; i < stack.pcs.size(); ++i) {
        const uint64_t pc = stack.pcs[i];
        const uint64_t address = (i == 0 && stack.leaf_is_pc) || pc == 0 ? pc : pc - 1;
        auto it = names_by_pc.find(address);
        if (it == names_by_pc.end()) {
          it = names_by_pc.emplace(address, symbolize(address)).first;
        }
        if (it->second.empty()) {
          frames.emplace_back();  // unknown: not library code
        } else {
          frames.insert(frames.end(), it->second.begin(), it->second.end());
        }
      }
      infos[sample.stack] = Classify(frames, cache);
    }
    const ContainerInfo& info = infos[sample.stack];
    if (info.empty()) continue;
    sample.labels.push_back(Label::Str(kContainerLabel, info.family));
    if (!info.op.empty()) sample.labels.push_back(Label::Str(kContainerOpLabel, info.op));
    if (!info.site.empty()) {
      sample.labels.push_back(Label::Str(kContainerSiteLabel, info.site));
    }
  }
}

void AddContainerLabels(Snapshot* snapshot, Symbolizer& symbolizer) {
  symbolizer.Refresh();
  AddContainerLabels(snapshot, [&symbolizer](uint64_t address) {
    std::vector<std::string> names;
    const LocationInfo location = symbolizer.Symbolize(address);
    for (const FrameInfo& frame : location.frames) {
      names.push_back(frame.name.empty() ? frame.system_name : frame.name);
    }
    return names;
  });
}

}  // namespace pprof_agent::internal
