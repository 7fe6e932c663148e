// The container pattern table against the frame names g++ 12 really
// produces (container_classifier_names.inc), the name parser on the shapes
// demangled C++ names take, and the labels AddContainerLabels() adds.
#include "profiler/heap/container_classifier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace pprof_agent::internal {
namespace {

#include "tests/profiler/heap/container_classifier_names.inc"

using ::testing::Contains;

TEST(ContainerPatterns, EveryPatternMatchesARealFrameName) {
  std::map<std::string, const char*> examples;
  for (const PatternExample& e : kPatternExamples) examples[e.key] = e.name;
  for (const std::string& key : ContainerPatternKeys()) {
    auto it = examples.find(key);
    ASSERT_NE(it, examples.end()) << "pattern without a real g++ 12 name: " << key;
    EXPECT_THAT(MatchingContainerPatterns(it->second), Contains(key)) << it->second;
  }
}

TEST(ContainerPatterns, ExamplesAreLibraryFrames) {
  for (const PatternExample& e : kPatternExamples) {
    EXPECT_TRUE(IsLibraryFrame(e.name)) << e.name;
  }
}

TEST(ContainerClassifier, RealStacks) {
  for (const StackExample& s : kStackExamples) {
    const ContainerInfo info = ClassifyFrames(s.frames);
    EXPECT_EQ(info.family, s.family) << s.frames.front();
    EXPECT_EQ(info.op, s.op) << s.family << " at " << s.site;
    EXPECT_EQ(info.site, s.site) << s.family;
  }
}

// Every family the issue names (and the ones beside them) has a real stack.
TEST(ContainerClassifier, EveryFamilyHasARealStack) {
  std::set<std::string> families;
  for (const StackExample& s : kStackExamples) families.insert(s.family);
  for (const char* family :
       {"std::unordered_map", "std::unordered_multimap", "std::unordered_set", "std::map",
        "std::multimap", "std::set", "std::multiset", "std::vector", "std::deque",
        "std::basic_string", "std::list", "std::forward_list", "absl::flat_hash_map",
        "absl::flat_hash_set", "absl::node_hash_map", "absl::node_hash_set",
        "boost::unordered_map", "boost::unordered_multimap", "boost::unordered_set"}) {
    EXPECT_EQ(families.count(family), 1u) << family;
  }
}

// The ops that tell the three map problems apart, on the hash table's paths.
TEST(ContainerClassifier, HashTableOps) {
  const std::string hashtable =
      "std::_Hashtable<int, std::pair<int const, int>, std::allocator<std::pair<int const, int> "
      ">, std::__detail::_Select1st, std::equal_to<int>, std::hash<int>, "
      "std::__detail::_Mod_range_hashing, std::__detail::_Default_ranged_hash, "
      "std::__detail::_Prime_rehash_policy, std::__detail::_Hashtable_traits<false, false, true> "
      ">";
  const std::string buckets = hashtable + "::_M_allocate_buckets(unsigned long)";
  const std::string rehash = hashtable + "::_M_rehash(unsigned long, unsigned long const&)";
  const std::string insert =
      hashtable +
      "::_M_insert_unique_node(unsigned long, unsigned long, "
      "std::__detail::_Hash_node<std::pair<int const, int>, false>*, unsigned long)";
  const std::string explicit_rehash = hashtable + "::rehash(unsigned long)";
  const std::string reserve =
      "std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, "
      "std::allocator<std::pair<int const, int> > >::reserve(unsigned long)";

  // Grown by inserts: rehash.
  ContainerInfo info = ClassifyFrames({buckets, rehash, insert, "Fill(int)"});
  EXPECT_EQ(info.family, "std::unordered_map");
  EXPECT_EQ(info.op, "rehash");
  EXPECT_EQ(info.site, "Fill");
  // Sized by the user: buckets.
  info = ClassifyFrames({buckets, rehash, explicit_rehash, reserve, "Fill(int)"});
  EXPECT_EQ(info.op, "buckets");
  // Copied (no rehash on the way): buckets.
  info = ClassifyFrames({buckets, hashtable + "::_M_assign()", "Copy()"});
  EXPECT_EQ(info.op, "buckets");
  // The multimap's traits say "not unique".
  std::string multi = buckets;
  multi.replace(multi.find("<false, false, true>"), 20, "<false, false, false>");
  EXPECT_EQ(ClassifyFrames({multi, "F()"}).family, "std::unordered_multimap");
}

// A string built inside a container belongs to std::basic_string; the
// container that held it is past the element construction.
TEST(ContainerClassifier, ElementConstructionEndsTheOwner) {
  const ContainerInfo info = ClassifyFrames({
      "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> "
      ">::_M_create(unsigned long&, unsigned long)",
      "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> "
      ">::basic_string(std::__cxx11::basic_string<char, std::char_traits<char>, "
      "std::allocator<char> > const&)",
      "void std::_Construct<std::__cxx11::basic_string<char, std::char_traits<char>, "
      "std::allocator<char> >>(std::__cxx11::basic_string<char, std::char_traits<char>, "
      "std::allocator<char> >*)",
      "std::vector<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> "
      ">, std::allocator<std::__cxx11::basic_string<char, std::char_traits<char>, "
      "std::allocator<char> > > >::_M_fill_insert(int)",
      "ns::Copy(int)",
  });
  EXPECT_EQ(info.family, "std::basic_string");
  EXPECT_EQ(info.op, "alloc");
  EXPECT_EQ(info.site, "ns::Copy");
}

TEST(ContainerClassifier, NotAContainer) {
  EXPECT_TRUE(ClassifyFrames({"operator new(unsigned long)", "Foo::Bar(int)"}).empty());
  EXPECT_TRUE(ClassifyFrames({}).empty());
  // Unknown frames (unsymbolized) are not library code.
  EXPECT_TRUE(ClassifyFrames({"", "std::vector<int, std::allocator<int> >::reserve(unsigned long)"})
                  .empty());
  // A container frame above user code does not label the user's own new.
  EXPECT_TRUE(ClassifyFrames({"operator new(unsigned long)", "Make()",
                              "std::vector<int, std::allocator<int> >::reserve(unsigned long)"})
                  .empty());
}

TEST(ContainerClassifier, SiteMayBeLambdaOrTemplate) {
  const std::string grow =
      "void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>(int const&)";
  EXPECT_EQ(ClassifyFrames({grow, "Run()::{lambda(int)#1}::operator()(int) const"}).site,
            "Run()::{lambda(int)#1}::operator()");
  EXPECT_EQ(ClassifyFrames({grow, "std::vector<int, std::allocator<int> > Make<int>(int)"}).site,
            "Make<int>");
  EXPECT_EQ(ClassifyFrames({grow, "(anonymous namespace)::Fill(std::vector<int>&)"}).site,
            "(anonymous namespace)::Fill");
}

TEST(QualifiedFunctionName, Shapes) {
  EXPECT_EQ(QualifiedFunctionName("main"), "main");
  EXPECT_EQ(QualifiedFunctionName("Foo::Bar(int) const"), "Foo::Bar");
  EXPECT_EQ(QualifiedFunctionName("void ns::F<int>(int) [clone .cold]"), "ns::F<int>");
  EXPECT_EQ(QualifiedFunctionName("operator new(unsigned long)"), "operator new");
  EXPECT_EQ(QualifiedFunctionName("operator delete[](void*)"), "operator delete[]");
  EXPECT_EQ(QualifiedFunctionName("std::__cxx11::basic_string<char, std::char_traits<char>, "
                                  "std::allocator<char> > std::operator+<char, "
                                  "std::char_traits<char>, std::allocator<char> >(char const*)"),
            "std::operator+<char, std::char_traits<char>, std::allocator<char> >");
  EXPECT_EQ(QualifiedFunctionName("bool operator<<(A, B)"), "operator<<");
  EXPECT_EQ(QualifiedFunctionName("X<int>::operator()<long>(long) &&"), "X<int>::operator()<long>");
  EXPECT_EQ(QualifiedFunctionName("std::string::_Rep::_S_create(unsigned long, unsigned long, "
                                  "std::allocator<char> const&)@@GLIBCXX_3.4"),
            "std::string::_Rep::_S_create");
  EXPECT_EQ(QualifiedFunctionName("decltype (f(0)) ns::G<int>(int)"), "ns::G<int>");
}

TEST(IsLibraryFrame, Prefixes) {
  EXPECT_TRUE(IsLibraryFrame("std::vector<int, std::allocator<int> >::reserve(unsigned long)"));
  EXPECT_TRUE(IsLibraryFrame("operator new(unsigned long)"));
  EXPECT_TRUE(IsLibraryFrame("malloc"));
  EXPECT_TRUE(IsLibraryFrame("absl::debian3::container_internal::Allocate<8ul>(int)"));
  EXPECT_FALSE(IsLibraryFrame("std::vector<int, std::allocator<int> > Make(int)"));
  EXPECT_FALSE(IsLibraryFrame("demo::BuildRequestContext(unsigned long, demo::Rng&)"));
  EXPECT_FALSE(IsLibraryFrame(""));
}

TEST(AddContainerLabels, LabelsSamplesThroughContainers) {
  Snapshot snap;
  snap.stacks = {Stack{{0x1001, 0x2001, 0x3001}, false}, Stack{{0x4001, 0x3001}, false}};
  Sample in_map;
  in_map.stack = 0;
  in_map.labels.push_back(Label::Num("bytes", 48));
  Sample plain;
  plain.stack = 1;
  snap.samples = {in_map, plain, in_map};
  std::map<uint64_t, std::vector<std::string>> symbols = {
      // Return addresses minus one, as the builder looks them up.
      {0x1000, {"std::_Rb_tree<int, std::pair<int const, int>, std::_Select1st<std::pair<int "
                "const, int> >, std::less<int>, std::allocator<std::pair<int const, int> > "
                ">::_M_get_node()"}},
      {0x2000, {"std::map<int, int, std::less<int>, std::allocator<std::pair<int const, int> > "
                ">::operator[](int const&)",
                "app::Index(int)"}},  // inlined into app::Index
      {0x3000, {"main"}},
      {0x4000, {"operator new(unsigned long)"}},
  };
  int lookups = 0;
  AddContainerLabels(&snap, [&](uint64_t address) {
    ++lookups;
    return symbols[address];
  });
  EXPECT_EQ(lookups, 4);  // each address once
  auto labels_of = [](const Sample& s) {
    std::map<std::string, std::string> out;
    for (const Label& l : s.labels) {
      if (!l.is_num) out[l.key] = l.str;
    }
    return out;
  };
  const std::map<std::string, std::string> expected = {
      {"container", "std::map"}, {"container_op", "node"}, {"container_site", "app::Index"}};
  EXPECT_EQ(labels_of(snap.samples[0]), expected);
  EXPECT_EQ(labels_of(snap.samples[2]), expected);
  EXPECT_TRUE(labels_of(snap.samples[1]).empty());
  EXPECT_EQ(snap.samples[0].labels.front().key, "bytes");  // kept, first
}

}  // namespace
}  // namespace pprof_agent::internal
