// Container labels for heap samples: which standard or well-known container
// made an allocation (`container`), what the allocation was for
// (`container_op`) and which user function is responsible
// (`container_site`), read from the symbolized frames of the sample's stack.
//
// Cold path only: it runs when a profile is built, on the agent's serving
// thread, and costs the hooks nothing. Every pattern lives in one table
// (kContainerPatterns in the .cc); tests/profiler/heap/container_classifier_test
// checks each one against the frame names g++ 12 / libstdc++ 12 produce.
#ifndef PPROF_AGENT_PROFILER_HEAP_CONTAINER_CLASSIFIER_H_
#define PPROF_AGENT_PROFILER_HEAP_CONTAINER_CLASSIFIER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "profiler/base/snapshot.h"

namespace pprof_agent::internal {

class Symbolizer;

// Label keys, as pprof shows them (-tags, -tagfocus).
inline constexpr char kContainerLabel[] = "container";
inline constexpr char kContainerOpLabel[] = "container_op";
inline constexpr char kContainerSiteLabel[] = "container_site";

// What one stack's allocation was. Empty `family` = not a container
// allocation (no labels).
//
// `op` is one of:
//   buckets  a hash table's bucket (slot) array sized up front: constructor
//            with a size, reserve(), rehash(n), copy
//   rehash   a bucket array allocated because an insert outgrew the table
//            (the map was not reserved)
//   node     one element node (hash, tree and list nodes, deque chunks)
//   grow     vector/string/deque-map reallocation as elements are added
//            (push_back, emplace_back, insert, resize, append, +=)
//   reserve  vector/string reallocation by an explicit reserve()
//   alloc    any other first allocation (construct, copy, assign)
struct ContainerInfo {
  std::string family;  // "std::unordered_map", "absl::flat_hash_map", ...
  std::string op;
  std::string site;  // first frame outside library code, without arguments
  bool empty() const { return family.empty(); }
};

// Classifies a stack given as function names, leaf first: one entry per
// frame, inlined frames included (innermost first), as pprof lists them.
ContainerInfo ClassifyFrames(const std::vector<std::string>& frames);

// The scope-qualified function name of a demangled frame, without return
// type, parameter list, cv/ref qualifiers or "[clone ...]" suffix:
// "void std::vector<int, std::allocator<int> >::_M_realloc_insert<int>(...)"
// -> "std::vector<int, std::allocator<int> >::_M_realloc_insert<int>".
std::string QualifiedFunctionName(std::string_view demangled);

// True if a frame of this name is library code (the standard library,
// absl, boost, operator new, the malloc family, the agent): the frames
// `container_site` skips.
bool IsLibraryFrame(std::string_view demangled);

// For tests of the pattern table: every pattern as "scope|method" ("*" for
// any method), in table order, and the patterns one frame name matches.
std::vector<std::string> ContainerPatternKeys();
std::vector<std::string> MatchingContainerPatterns(std::string_view demangled);

// Adds container/container_op/container_site labels to every sample of
// `snapshot` whose stack passes through a container's allocation path.
// `symbolize` maps one adjusted address (return address - 1) to its frame
// names, innermost first. Stacks are classified once each.
void AddContainerLabels(
    Snapshot* snapshot,
    const std::function<std::vector<std::string>(uint64_t)>& symbolize);

// The same with the process's symbolizer (refreshed first).
void AddContainerLabels(Snapshot* snapshot, Symbolizer& symbolizer);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HEAP_CONTAINER_CLASSIFIER_H_
