// Memory-mapped token data (evaluator/data/token_sequence.hpp): windows that
// cross files, slices, ids checked where they are read, and a shard set
// larger than the memory a process may allocate.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <new>
#include <vector>

#include "common/input_error.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#include "evaluator/data/dataset.hpp"
#include "evaluator/data/token_readers.hpp"
#include "evaluator/trainer.hpp"
#include "test_data_helpers.hpp"
#include "tests/evaluator/spec_builders.hpp"

using livs::InputError;
using livs::evaluator::DataFormat;
using livs::evaluator::DataSettings;
using livs::evaluator::load_dataset;
using livs::evaluator::open_token_shard;
using livs::evaluator::TokenSequence;
using livs::test::shard_bytes;
using livs::test::TempFolder;

TEST_CASE("a sequence over several shards reads windows across the file boundary") {
  TempFolder dir;
  TokenSequence tokens = open_token_shard(dir.write("a.bin", shard_bytes({1, 2, 3})));
  tokens.append(open_token_shard(dir.write("b.bin", shard_bytes({4, 5}))));
  tokens.append(open_token_shard(dir.write("c.bin", shard_bytes({6, 7, 8, 9}))));
  REQUIRE(tokens.size() == 9);
  std::vector<int32_t> window(6);
  tokens.copy_checked(1, 6, 10, window.data());
  CHECK(window == std::vector<int32_t>{2, 3, 4, 5, 6, 7});
  CHECK(tokens.slice(2, 4).to_vector() == std::vector<uint16_t>{3, 4, 5, 6});
  CHECK(tokens.slice(2, 4).slice(1, 2).to_vector() == std::vector<uint16_t>{4, 5});
  CHECK(tokens.slice(9, 0).empty());
  CHECK(tokens[8] == 9);
  CHECK_THROWS_AS(tokens.copy_checked(5, 5, 10, window.data()), std::out_of_range);
  CHECK_THROWS_AS(tokens.slice(-1, 2), std::out_of_range);
}

TEST_CASE("a token id >= vocab is an input error naming the file and byte where it is read") {
  TempFolder dir;
  TokenSequence tokens = open_token_shard(dir.write("a.bin", shard_bytes({1, 2, 3})));
  const auto b = dir.write("b.bin", shard_bytes({4, 500, 6}));
  tokens.append(open_token_shard(b));
  std::vector<int32_t> window(3);
  tokens.copy_checked(0, 3, 100, window.data());  // the bad id is not in this window
  try {
    tokens.copy_checked(2, 3, 100, window.data());
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(e.file() == b);
    CHECK(e.problems().at(0).pointer == "byte 1026");
    CHECK(e.problems().at(0).message == "expected a token id < vocab 100, got 500");
  }
  // A slice keeps the file's own offsets for its errors.
  CHECK_THROWS_WITH_AS(tokens.slice(4, 1).check_ids(0, 1, 100), doctest::Contains("byte 1026"), InputError);
}

TEST_CASE("loading checks every id of an ordinary data set before training") {
  TempFolder dir;
  DataSettings settings;
  settings.format = DataFormat::tokens;
  settings.vocab = 300;
  std::vector<uint16_t> ids(2000, 7);
  ids[1500] = 300;
  const auto path = dir.write("s.bin", shard_bytes(ids));
  settings.paths = {path};
  CHECK_THROWS_WITH_AS(load_dataset(settings),
                       doctest::Contains("byte 4024: expected a token id < vocab 300"), InputError);
}

TEST_CASE("text is mapped too: one token per byte, the split a view of the file") {
  TempFolder dir;
  DataSettings settings;
  settings.paths = {dir.write_text("t.txt", "abcdefghij")};
  settings.validation_fraction = 0.2;
  const auto data = load_dataset(settings);
  CHECK(data.train.to_vector() == std::vector<uint16_t>{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'});
  CHECK(data.validation.to_vector() == std::vector<uint16_t>{'i', 'j'});
  CHECK(data.validation.pieces().at(0).file_offset == 8);
}

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

constexpr int64_t kShardTokens = int64_t(256) << 20;  // 512 MiB of tokens per shard
constexpr int kShards = 3;                            // 1.5 GiB in all
constexpr rlim_t kMemoryLimit = rlim_t(1) << 30;      // 1 GiB

// A shard of kShardTokens as a sparse file: the header, zeros, and the shard's
// number in its last token (so the test can tell the files apart).
bool write_sparse_shard(const std::string& path, int number) {
  std::vector<unsigned char> header = shard_bytes({});
  livs::test::put_le32(header, 8, static_cast<int32_t>(kShardTokens));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  const uint16_t last = static_cast<uint16_t>(100 + number);
  const unsigned char tail[2] = {static_cast<unsigned char>(last & 0xff),
                                 static_cast<unsigned char>(last >> 8)};
  const off_t end = off_t(1024 + 2 * kShardTokens);
  const bool ok = ::pwrite(fd, header.data(), 1024, 0) == 1024 && ::pwrite(fd, tail, 2, end - 2) == 2;
  ::close(fd);
  return ok;
}

// Runs in the child under the memory limit; returns the exit status.
int train_on_the_large_set(const DataSettings& settings) {
  // The limit is real: copying the set into memory, as loading once did, fails.
  try {
    std::vector<uint16_t> copy(static_cast<std::size_t>(kShards * kShardTokens));
    return 10;
  } catch (const std::bad_alloc&) {
  }
  const auto data = load_dataset(settings);
  if (data.train.size() + data.validation.size() != kShards * kShardTokens) return 11;
  if (data.validation.back() != 100 + kShards - 1) return 12;
  // A window across the boundary of the first two shards.
  std::vector<int32_t> window(4);
  data.train.copy_checked(kShardTokens - 2, 4, settings.vocab, window.data());
  if (window != std::vector<int32_t>{0, 100, 0, 0}) return 13;
  // A few training steps read random windows from all of it.
  auto spec = livs::evaluator::testing::transformer_spec(32, 1, 4, 4, 64, settings.vocab);
  livs::evaluator::TrainSettings train;
  train.steps = 3;
  train.batch_size = 2;
  train.seq_len = 16;
  train.warmup_steps = 1;
  train.eval_tokens = 64;
  livs::evaluator::CpuBackend backend;
  const auto report =
      livs::evaluator::train_and_evaluate(spec, train, data.train, data.validation, 1, backend);
  if (report.status != livs::evaluator::TrainStatus::ok) {
    std::fprintf(stderr, "training failed: %s\n", report.error.c_str());
    return 14;
  }
  return 0;
}

}  // namespace

TEST_CASE("a shard set larger than the memory limit of the process trains, mapped") {
  if (kAddressSanitizer) {
    MESSAGE("skipped under AddressSanitizer: its shadow memory does not fit a 1 GiB data limit");
    return;
  }
  TempFolder dir;
  struct statvfs space {};
  if (::statvfs(dir.path().c_str(), &space) != 0 || space.f_bavail * space.f_frsize < (64u << 20)) {
    MESSAGE("skipped: the temporary folder has less than 64 MiB free");
    return;
  }
  DataSettings settings;
  settings.format = DataFormat::tokens;
  settings.vocab = 1000;
  settings.validation_fraction = 0.1;
  for (int i = 0; i < kShards; ++i) {
    const auto path = dir.file("shard_" + std::to_string(i) + ".bin");
    if (!write_sparse_shard(path, i)) {
      MESSAGE("skipped: cannot write a sparse 512 MiB file in the temporary folder");
      return;
    }
    settings.paths.push_back(path);
  }
  // RLIMIT_DATA bounds what a process allocates (heap, anonymous memory) but
  // not read-only file mappings, which is the point: RLIMIT_AS would also
  // count the mapping's address space, which costs no memory.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const rlimit limit{kMemoryLimit, kMemoryLimit};
    if (::setrlimit(RLIMIT_DATA, &limit) != 0) ::_exit(9);
    int status = 1;
    try {
      status = train_on_the_large_set(settings);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      status = 15;
    }
    ::_exit(status);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 10: the limit did not bite; 11-15: see train_on_the_large_set
}
