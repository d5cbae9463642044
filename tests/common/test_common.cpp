#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "common/duration_text.hpp"
#include "common/json_reader.hpp"
#include "common/rng.hpp"
#include "common/sha256.hpp"

using namespace livs;

TEST_CASE("format_duration: tenths of a second below a minute, minutes and seconds above") {
  CHECK(livs::format_duration(0.0) == "0.0s");
  CHECK(livs::format_duration(4.24) == "4.2s");
  CHECK(livs::format_duration(59.4) == "59.4s");
  CHECK(livs::format_duration(59.6) == "1m00s");
  CHECK(livs::format_duration(187.0) == "3m07s");
}

TEST_CASE("sha256 matches FIPS 180-4 test vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 fed in pieces of every size, and of a file, equals the one-shot digest") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += static_cast<char>('a' + (i * 7) % 26);
  const std::string whole = sha256_hex(text);
  for (std::size_t piece : {1, 3, 63, 64, 65, 127, 1000}) {
    Sha256 hash;
    for (std::size_t at = 0; at < text.size(); at += piece)
      hash.update(std::string_view(text).substr(at, piece));
    CAPTURE(piece);
    CHECK(hash.hex_digest() == whole);
  }
  const auto path = std::filesystem::temp_directory_path() / "livsearch_sha256_file.txt";
  std::ofstream(path, std::ios::binary) << text;
  CHECK(sha256_file_hex(path.string()) == whole);
  std::filesystem::remove(path);
  CHECK_FALSE(sha256_file_hex(path.string()).has_value());
}

TEST_CASE("rng is deterministic and in range") {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    auto x = a.next();
    CHECK(x == b.next());
    differs = differs || x != c.next();
  }
  CHECK(differs);
  Rng r(7);
  int hist[5] = {};
  for (int i = 0; i < 50000; ++i) {
    auto v = r.integer(-2, 2);
    REQUIRE(v >= -2);
    REQUIRE(v <= 2);
    hist[v + 2]++;
  }
  for (int h : hist) CHECK(h > 9000);
  double sum = 0, sq = 0;
  for (int i = 0; i < 100000; ++i) {
    double z = r.normal();
    sum += z;
    sq += z * z;
  }
  CHECK(std::fabs(sum / 100000) < 0.02);
  CHECK(std::fabs(sq / 100000 - 1.0) < 0.03);
  CHECK(derive_seed(1, "init") != derive_seed(1, "data"));
  CHECK(derive_seed(1, 5) == derive_seed(1, 5));
}

TEST_CASE("json reader names file, pointer and expectation") {
  Json doc = parse_json_text(R"({"search": {"population": "16", "ok": 3}, "list": [1, 2.5]})", "x.json");
  JsonReader root(doc, "x.json");
  auto err = [&](auto f) {
    try {
      f();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(err([&] { root.at("search").at("population").integer(2); }) ==
        "x.json: /search/population: expected an integer >= 2, got \"16\"");
  CHECK(err([&] { root.at("missing"); }) == "x.json: /: missing required key \"missing\"");
  CHECK(err([&] { root.at("list").index(1).integer(); }) == "x.json: /list/1: expected an integer, got 2.5");
  CHECK(err([&] { root.at("search").expect_keys({"population"}); }) ==
        "x.json: /search/ok: unknown key (expected one of population)");
  CHECK(root.at("search").at("ok").integer(0, 10) == 3);
  CHECK(root.at("search").integer_or("absent", 9) == 9);
  CHECK(err([&] {
          parse_json_text("{\n  \"a\": 1,\n}", "bad.json");
        }).rfind("bad.json: line 3 column 1: invalid JSON", 0) == 0);
}

// Found by fuzz_genome (docs/fuzzing.md): a number beyond a double is
// nlohmann's out_of_range, not a parse error; it escaped parse_json_text and
// the CLI exited 1 with the library's message instead of 2 with the place.
TEST_CASE("a JSON number too large for a double is an input error with its place") {
  try {
    livs::parse_json_text("{\"d_model\": 32,\n \"vocab\": 1e999999}", "g.json");
    FAIL("expected an error");
  } catch (const livs::InputError& e) {
    CHECK(e.file() == "g.json");
    CHECK(e.problems().at(0).pointer == "line 2 column 11");
    CHECK(e.problems().at(0).message == "invalid JSON: the number 1e999999 is too large for a double");
  }
  CHECK_THROWS_AS(livs::parse_json_text(std::string(50, '3') + "e333333", "x.json"), livs::InputError);
}
