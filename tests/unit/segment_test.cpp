// The named object behind a ring: name rules, exclusive create, missing
// names, permission bits whatever the umask, another user's ring, and the
// configurations create refuses.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "shmring/ring.hpp"
#include "shmring/shmring.h"
#include "support/ring_fixture.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

Config small_config() {
  Config cfg;
  cfg.capacity = 4096;
  return cfg;
}

shmring_config c_config(std::size_t capacity = 4096, unsigned mode = 0) {
  shmring_config c{};
  c.kind = SHMRING_SPSC;
  c.wait = SHMRING_WAIT_FUTEX;
  c.capacity = capacity;
  c.slot_size = 0;
  c.mode = mode;
  return c;
}

bool exists_in_dev_shm(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Restores the process umask on scope exit.
class UmaskScope {
 public:
  explicit UmaskScope(mode_t m) : old_(::umask(m)) {}
  ~UmaskScope() { ::umask(old_); }
  UmaskScope(const UmaskScope&) = delete;
  UmaskScope& operator=(const UmaskScope&) = delete;

 private:
  mode_t old_;
};

// ---- Names ---------------------------------------------------------------------------

TEST(Names, InvalidNamesAreRefusedEverywhere) {
  // A unique stem keeps the names that reach the file system (if a bug let
  // them through) traceable to this test.
  const std::string stem = unique_ring_name().substr(1);
  const std::vector<std::string> bad = {
      "",
      "/",
      "//",
      "///x" + stem,
      "//" + stem,
      "a/" + stem,
      stem + "/b",
      ".",
      "..",
      "/.",
      "/..",
      "-" + stem,
      "/-" + stem,
      stem + "\n",
      stem + "\t",
      std::string("\x01") + stem,
      stem + "\x7f",
      stem + "\xff",  // not UTF-8
      std::string(255, 'a'),
      std::string(256, 'b'),
      std::string(4000, 'c'),
      "sem." + stem,
      "/sem." + stem,
  };
  for (const auto& n : bad) {
    SCOPED_TRACE("name \"" + n.substr(0, 60) + "\" (length " + std::to_string(n.size()) + ")");
    EXPECT_EQ(create(n, small_config()), Errc::invalid_argument);
    EXPECT_EQ(Producer::open(n).error(), Errc::invalid_argument);
    EXPECT_EQ(Consumer::open(n).error(), Errc::invalid_argument);
    EXPECT_EQ(unlink(n), Errc::invalid_argument);
    EXPECT_EQ(canonical_name(n).error(), Errc::invalid_argument);
    EXPECT_FALSE(last_error_message().empty());
    const auto cfg = c_config();
    EXPECT_EQ(shmring_create(n.c_str(), &cfg), SHMRING_EINVAL);
    shmring_t* r = reinterpret_cast<shmring_t*>(0x1);
    EXPECT_EQ(shmring_open(n.c_str(), SHMRING_PRODUCER, &r), SHMRING_EINVAL);
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(shmring_unlink(n.c_str()), SHMRING_EINVAL);
  }
  // Nothing reached /dev/shm.
  EXPECT_FALSE(exists_in_dev_shm("/dev/shm/sem." + stem));
  EXPECT_FALSE(exists_in_dev_shm("/dev/shm/-" + stem));
  EXPECT_FALSE(exists_in_dev_shm("/dev/shm/" + stem));
  EXPECT_FALSE(exists_in_dev_shm("/dev/shm/" + std::string(255, 'a')));
}

TEST(Names, EmbeddedNulIsRefused) {
  const std::string stem = unique_ring_name().substr(1);
  const std::string n = stem + std::string(1, '\0') + "x";
  EXPECT_EQ(create(n, small_config()), Errc::invalid_argument);
  EXPECT_EQ(Producer::open(n).error(), Errc::invalid_argument);
  EXPECT_FALSE(exists_in_dev_shm("/dev/shm/" + stem));
}

TEST(Names, ValidNamesWorkWithOrWithoutTheLeadingSlash) {
  const std::string stem = unique_ring_name().substr(1);
  for (const std::string& n : {stem + ".a", stem + "_b-c.d", stem + "-" + std::string(150 - stem.size(), 'z')}) {
    SCOPED_TRACE(n);
    ShmGuard guard("/" + n);
    auto canon = canonical_name(n);
    ASSERT_TRUE(canon.ok());
    EXPECT_EQ(*canon, "/" + n);
    EXPECT_EQ(*canonical_name("/" + n), "/" + n);
    ASSERT_EQ(create(n, small_config()), Errc::ok) << last_error_message();
    EXPECT_TRUE(exists_in_dev_shm("/dev/shm/" + n));
    // Either spelling reaches the same ring.
    auto p = Producer::open("/" + n);
    auto c = Consumer::open(n);
    ASSERT_TRUE(p.ok() && c.ok());
    EXPECT_EQ(p->name(), "/" + n);
    EXPECT_EQ(c->name(), "/" + n);
    ASSERT_EQ(push_record(*p, 0, 12), Errc::ok);
    EXPECT_EQ(pop_record(*c, 0, 12), "");
    EXPECT_EQ(unlink(n), Errc::ok);
    EXPECT_FALSE(exists_in_dev_shm("/dev/shm/" + n));
  }
}

// ---- Exists / not found --------------------------------------------------------------

TEST(Create, SecondCreateIsRefusedAndTheRingIsUntouched) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create(name, small_config()), Errc::ok);
  auto p = Producer::open(name);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(push_record(*p, 0, 100), Errc::ok);
  EXPECT_EQ(create(name, small_config()), Errc::exists);
  EXPECT_NE(last_error_message().find(name), std::string::npos) << last_error_message();
  Config other = small_config();
  other.capacity = 1 << 20;
  EXPECT_EQ(create(name, other), Errc::exists);
  const auto cfg = c_config();
  EXPECT_EQ(shmring_create(name.c_str(), &cfg), SHMRING_EEXIST);
  EXPECT_NE(std::string(shmring_last_error()).find(name), std::string::npos) << shmring_last_error();
  auto c = Consumer::open(name);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_record(), 2040u);  // still the 4096-byte ring
  EXPECT_EQ(pop_record(*c, 0, 100), "");
}

TEST(Create, ForeignObjectUnderTheNameIsNeverReused) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  const char text[] = "somebody else's data";
  ASSERT_TRUE(write_object(name, text, sizeof text));
  EXPECT_EQ(create(name, small_config()), Errc::exists);
  const auto bytes = read_object(name);
  ASSERT_EQ(bytes.size(), sizeof text);
  EXPECT_EQ(std::memcmp(bytes.data(), text, sizeof text), 0);
}

TEST(Open, MissingNameIsNotFound) {
  const auto name = unique_ring_name();
  EXPECT_EQ(Producer::open(name).error(), Errc::not_found);
  EXPECT_NE(last_error_message().find(name), std::string::npos) << last_error_message();
  EXPECT_EQ(Consumer::open(name).error(), Errc::not_found);
  EXPECT_EQ(unlink(name), Errc::not_found);
  shmring_t* r = reinterpret_cast<shmring_t*>(0x1);
  EXPECT_EQ(shmring_open(name.c_str(), SHMRING_CONSUMER, &r), SHMRING_ENOENT);
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(std::string(shmring_last_error()).find(name), std::string::npos) << shmring_last_error();
  EXPECT_EQ(shmring_unlink(name.c_str()), SHMRING_ENOENT);
}

TEST(Open, UnlinkedRingIsNotFound) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create(name, small_config()), Errc::ok);
  ASSERT_EQ(unlink(name), Errc::ok);
  EXPECT_EQ(Producer::open(name).error(), Errc::not_found);
  EXPECT_EQ(unlink(name), Errc::not_found);
  // The name is free again.
  EXPECT_EQ(create(name, small_config()), Errc::ok);
}

// ---- Modes ---------------------------------------------------------------------------

TEST(Mode, DefaultIs0600WhateverTheUmask) {
  for (mode_t um : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    SCOPED_TRACE("umask " + std::to_string(um));
    UmaskScope scope(um);
    const auto name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_EQ(create(name, small_config()), Errc::ok);
    EXPECT_EQ(object_mode(name), 0600);
    Config zero = small_config();
    zero.mode = 0;
    const auto name2 = unique_ring_name();
    ShmGuard guard2(name2);
    ASSERT_EQ(create(name2, zero), Errc::ok);
    EXPECT_EQ(object_mode(name2), 0600);
    const auto name3 = unique_ring_name();
    ShmGuard guard3(name3);
    const auto c = c_config(4096, 0);
    ASSERT_EQ(shmring_create(name3.c_str(), &c), SHMRING_OK);
    EXPECT_EQ(object_mode(name3), 0600);
  }
}

TEST(Mode, ExplicitModeIsAppliedExactlyWhateverTheUmask) {
  for (mode_t um : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0777}}) {
    for (unsigned mode : {0400u, 0640u, 0660u, 0666u, 0604u}) {
      SCOPED_TRACE("umask " + std::to_string(um) + " mode " + std::to_string(mode));
      UmaskScope scope(um);
      const auto name = unique_ring_name();
      ShmGuard guard(name);
      Config cfg = small_config();
      cfg.mode = mode;
      ASSERT_EQ(create(name, cfg), Errc::ok) << last_error_message();
      EXPECT_EQ(object_mode(name), static_cast<int>(mode));
      RawMap raw(name);
      ASSERT_TRUE(raw.ok());
      EXPECT_EQ(raw.header()->id.mode, mode);
      const auto cname = unique_ring_name();
      ShmGuard cguard(cname);
      const auto c = c_config(4096, mode);
      ASSERT_EQ(shmring_create(cname.c_str(), &c), SHMRING_OK);
      EXPECT_EQ(object_mode(cname), static_cast<int>(mode));
    }
  }
}

TEST(Mode, BitsOutside0777AreRefused) {
  for (unsigned mode : {01600u, 02600u, 04600u, 010000u}) {
    const auto name = unique_ring_name();
    ShmGuard guard(name);
    Config cfg = small_config();
    cfg.mode = mode;
    EXPECT_EQ(create(name, cfg), Errc::invalid_argument) << mode;
    EXPECT_FALSE(exists_in_dev_shm(shm_path(name)));
  }
}

// ---- Another user's ring --------------------------------------------------------------

std::string open_as_nobody(const std::string& name_0600, const std::string& name_0666) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
    return std::string("could not become nobody: ") + std::strerror(errno);
  }
  if (::geteuid() != 65534) return "still not uid 65534";
  std::string err;
  auto expect = [&](const char* what, int got, int want) {
    if (got != want) {
      err += std::string(what) + ": got " + shmring_strerror(got) + " (" + std::to_string(got) + "), want " +
             shmring_strerror(want) + "; ";
    }
  };
  shmring_t* r = nullptr;
  expect("C open producer of a 0600 root ring", shmring_open(name_0600.c_str(), SHMRING_PRODUCER, &r), SHMRING_EPERM);
  if (std::string(shmring_last_error()).find(name_0600) == std::string::npos)
    err += std::string("last error does not name the ring: ") + shmring_last_error() + "; ";
  expect("C open consumer of a 0600 root ring", shmring_open(name_0600.c_str(), SHMRING_CONSUMER, &r), SHMRING_EPERM);
  expect("C unlink of a root ring in sticky /dev/shm", shmring_unlink(name_0600.c_str()), SHMRING_EPERM);
  expect("C++ Producer::open", static_cast<int>(Producer::open(name_0600).error()), SHMRING_EPERM);
  expect("C++ Consumer::open", static_cast<int>(Consumer::open(name_0600).error()), SHMRING_EPERM);
  // Control: the same user can use a ring whose mode lets it.
  auto p = Producer::open(name_0666);
  auto c = Consumer::open(name_0666);
  if (!p.ok() || !c.ok()) {
    err += std::string("open of the 0666 ring failed: ") + last_error_message() + "; ";
  } else {
    if (push_record(*p, 1, 99) != Errc::ok) err += "push to the 0666 ring failed; ";
    if (auto e = pop_record(*c, 1, 99); !e.empty()) err += "pop from the 0666 ring: " + e + "; ";
  }
  return err;
}

TEST(Permission, NonRootUserGetsEpermOnA0600Ring) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a ring as one user and open it as another";
  const auto name = unique_ring_name("0600");
  ShmGuard guard(name);
  ASSERT_EQ(create(name, small_config()), Errc::ok);
  const auto open_name = unique_ring_name("0666");
  ShmGuard open_guard(open_name);
  Config cfg = small_config();
  cfg.mode = 0666;
  ASSERT_EQ(create(open_name, cfg), Errc::ok);
  auto r = run_in_child([&] { return open_as_nobody(name, open_name); }, std::chrono::seconds(30));
  EXPECT_TRUE(r.ok()) << r.describe();
  // The refused unlink left the ring in place and intact.
  auto p = Producer::open(name);
  EXPECT_TRUE(p.ok()) << last_error_message();
}

// ---- Configurations create refuses --------------------------------------------------------

TEST(Create, ImpossibleConfigurationsAreRefusedAndLeaveNothing) {
  struct Case {
    const char* what;
    Config cfg;
  };
  auto with = [](auto f) {
    Config c;
    c.capacity = 4096;
    f(c);
    return c;
  };
  const std::vector<Case> cases = {
      {"capacity 0", with([](Config& c) { c.capacity = 0; })},
      {"capacity 1000", with([](Config& c) { c.capacity = 1000; })},
      {"capacity 4095", with([](Config& c) { c.capacity = 4095; })},
      {"capacity 4097", with([](Config& c) { c.capacity = 4097; })},
      {"capacity 2048 (power of two below the minimum)", with([](Config& c) { c.capacity = 2048; })},
      {"capacity 3<<20", with([](Config& c) { c.capacity = 3 << 20; })},
      {"capacity 2^41", with([](Config& c) { c.capacity = std::size_t{1} << 41; })},
      {"capacity 2^63", with([](Config& c) { c.capacity = std::size_t{1} << 63; })},
      {"capacity SIZE_MAX", with([](Config& c) { c.capacity = SIZE_MAX; })},
      {"slot size on an spsc ring", with([](Config& c) { c.slot_size = 64; })},
      {"unknown kind", with([](Config& c) { c.kind = static_cast<Kind>(9); })},
      {"unknown wait strategy", with([](Config& c) { c.wait = static_cast<WaitStrategy>(0); })},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    const auto name = unique_ring_name();
    ShmGuard guard(name);
    EXPECT_EQ(create(name, k.cfg), Errc::invalid_argument);
    EXPECT_NE(last_error_message().find(name), std::string::npos) << last_error_message();
    EXPECT_FALSE(exists_in_dev_shm(shm_path(name)));
  }
}

TEST(Create, AllWaitStrategiesAndCapacitiesRoundTrip) {
  for (WaitStrategy w : {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem}) {
    for (std::size_t cap : {std::size_t{4096}, std::size_t{1} << 16, std::size_t{1} << 22}) {
      SCOPED_TRACE(std::string(to_string(w)) + " " + std::to_string(cap));
      const auto name = unique_ring_name();
      ShmGuard guard(name);
      Config cfg;
      cfg.capacity = cap;
      cfg.wait = w;
      ASSERT_EQ(create(name, cfg), Errc::ok) << last_error_message();
      RawMap raw(name);
      ASSERT_TRUE(raw.ok());
      EXPECT_EQ(raw.size(), 4096 + cap);
      EXPECT_EQ(raw.header()->id.wait, static_cast<std::uint32_t>(w));
      auto p = Producer::open(name);
      auto c = Consumer::open(name);
      ASSERT_TRUE(p.ok() && c.ok());
      ASSERT_EQ(push_record(*p, 3, 200), Errc::ok);
      EXPECT_EQ(pop_record(*c, 3, 200), "");
    }
  }
}

// A valid but enormous ring (1 TiB) cannot be backed: no_space, and no file
// is left behind. Only run where tmpfs refuses such a reservation up front
// (its size is below the request), so the test never fills the machine.
TEST(Create, RingLargerThanSharedMemoryIsNoSpaceAndLeavesNothing) {
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs("/dev/shm", &vfs), 0);
  const double total = static_cast<double>(vfs.f_blocks) * static_cast<double>(vfs.f_frsize);
  if (total == 0 || total >= static_cast<double>(std::uint64_t{1} << 39))
    GTEST_SKIP() << "/dev/shm is unbounded or larger than 512 GiB";
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  Config cfg;
  cfg.capacity = std::size_t{1} << 40;
  EXPECT_EQ(create(name, cfg), Errc::no_space) << last_error_message();
  EXPECT_FALSE(exists_in_dev_shm(shm_path(name)));
}

// ---- Names of things --------------------------------------------------------------------

TEST(Errors, CategoryAndNames) {
  const std::error_code ec = Errc::timed_out;
  EXPECT_EQ(&ec.category(), &error_category());
  EXPECT_STREQ(ec.category().name(), "shmring");
  EXPECT_EQ(ec.value(), SHMRING_ETIMEDOUT);
  EXPECT_EQ(ec.message(), shmring_strerror(SHMRING_ETIMEDOUT));
  EXPECT_STREQ(to_string(Errc::corrupt), shmring_strerror(SHMRING_ECORRUPT));
  EXPECT_STREQ(to_string(Kind::spsc), "spsc");
  EXPECT_STREQ(to_string(Kind::mpmc), "mpmc");
  EXPECT_STREQ(to_string(Kind::locked), "locked");
  EXPECT_STREQ(to_string(WaitStrategy::futex), "futex");
  EXPECT_STREQ(to_string(WaitStrategy::spin), "spin");
  EXPECT_STREQ(to_string(WaitStrategy::sem), "sem");
  EXPECT_STREQ(to_string(Role::producer), "producer");
  EXPECT_STREQ(to_string(Role::consumer), "consumer");
  EXPECT_TRUE(static_cast<bool>(make_error_code(Errc::busy)));
  EXPECT_FALSE(static_cast<bool>(make_error_code(Errc::ok)));
}

}  // namespace
}  // namespace shmring::test
