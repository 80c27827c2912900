// shmtool and a ring whose name was removed while its peers run: list shows
// it as orphaned with the processes that still have it open, inspect of the
// name says so, and a ring re-created under the name is listed separately.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <string>

#include "json.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"
#include "support/test_support.hpp"

namespace {

using namespace shmtool_test;
using shmring::Errc;
using shmring::test::ShmGuard;
using shmring::test::unique_ring_name;

std::vector<const Json*> rings_named(const Json& list, const std::string& name) {
  std::vector<const Json*> out;
  for (const Json& r : list["rings"].arr)
    if (r["name"].str == name) out.push_back(&r);
  return out;
}

std::span<const std::byte> bytes_of(const char* s) {
  return {reinterpret_cast<const std::byte*>(s), std::strlen(s)};
}

TEST(ShmtoolOrphan, RemovedNameIsListedAsOrphanedWithItsProcesses) {
  const std::string name = unique_ring_name("orphan");
  ShmGuard guard(name);
  ToolRun r = run_tool({"create", name, "--kind", "spsc", "--capacity", "64k"});
  ASSERT_EQ(r.code, 0) << r.describe();
  auto p = shmring::Producer::open(name);
  auto c = shmring::Consumer::open(name);
  ASSERT_TRUE(p.ok() && c.ok());
  for (const char* s : {"one", "two", "three"}) ASSERT_EQ(p->send(bytes_of(s)), Errc::ok);

  // Before: an ordinary ring, not orphaned.
  r = run_tool({"list", "--json"});
  ASSERT_EQ(r.code, 0) << r.describe();
  Json list = parse_json(r.out);
  auto found = rings_named(list, name);
  ASSERT_EQ(found.size(), 1u) << r.out.substr(0, 3000);
  EXPECT_EQ((*found[0])["state"].str, "ready");
  EXPECT_FALSE((*found[0])["orphaned"].b);

  const std::string path = "/dev/shm" + name;
  ASSERT_EQ(::unlink(path.c_str()), 0);
  // The pair keeps working.
  ASSERT_EQ(p->send(bytes_of("four")), Errc::ok);
  std::byte buf[64];
  ASSERT_TRUE(c->recv(buf).ok());

  r = run_tool({"list", "--json"});
  ASSERT_EQ(r.code, 0) << r.describe();
  list = parse_json(r.out);
  found = rings_named(list, name);
  ASSERT_EQ(found.size(), 1u) << "the removed ring must still be listed: " << r.out.substr(0, 3000);
  const Json& o = *found[0];
  EXPECT_EQ(o["state"].str, "orphaned");
  EXPECT_TRUE(o["orphaned"].b);
  ASSERT_EQ(o["held_by"].arr.size(), 1u);
  EXPECT_EQ(o["held_by"][0].i64(), static_cast<std::int64_t>(::getpid()));
  EXPECT_EQ(o["peers_live"].u64(), 2u);
  EXPECT_EQ(o["fill_records"].u64(), 3u);

  r = run_tool({"list"});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.out.find(name + ": orphaned (its name was removed), still open in process " + std::to_string(::getpid())),
            std::string::npos)
      << r.out;

  // inspect of the name: no such object, but it says where the ring went.
  r = run_tool({"inspect", name});
  EXPECT_EQ(r.code, 3) << r.describe();
  EXPECT_NE(r.err.find("orphaned ring once named " + name), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("its name was removed; still open in process " + std::to_string(::getpid())), std::string::npos)
      << r.describe();

  // A new ring under the same name is another ring: listed once as ready
  // (no peers) and once as orphaned (the old pair, with its records).
  r = run_tool({"create", name, "--kind", "spsc", "--capacity", "4096"});
  ASSERT_EQ(r.code, 0) << r.describe();
  r = run_tool({"list", "--json"});
  ASSERT_EQ(r.code, 0) << r.describe();
  list = parse_json(r.out);
  found = rings_named(list, name);
  ASSERT_EQ(found.size(), 2u) << r.out.substr(0, 3000);
  const Json& fresh = (*found[0])["orphaned"].b ? *found[1] : *found[0];
  const Json& old = (*found[0])["orphaned"].b ? *found[0] : *found[1];
  EXPECT_FALSE(fresh["orphaned"].b);
  EXPECT_EQ(fresh["capacity"].u64(), 4096u);
  EXPECT_EQ(fresh["peers_live"].u64(), 0u);
  EXPECT_TRUE(old["orphaned"].b);
  EXPECT_EQ(old["capacity"].u64(), 65536u);
  EXPECT_EQ(old["peers_live"].u64(), 2u);
  r = run_tool({"inspect", name});
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.out.find("it is another ring than this one"), std::string::npos) << r.out;
}

}  // namespace
