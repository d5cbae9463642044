// The HTML report from databases written with the db module's Store: a
// synthetic 1000-candidate run (size bound, every candidate plotted, the front
// table agreeing with search/run_front), hostile text escaped, nothing that
// could fetch from the network, and the SVG primitives' scales.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "common/json_reader.hpp"
#include "common/rng.hpp"
#include "db/store.hpp"
#include "genome/genome_json.hpp"
#include "genome/operators.hpp"
#include "genome/presets.hpp"
#include "genome/search_space.hpp"
#include "report/report.hpp"
#include "report/sections.hpp"
#include "report/svg.hpp"
#include "search/run_front.hpp"

using namespace livs;

namespace {

std::filesystem::path fresh_db(const std::string& name) {
  const auto folder =
      std::filesystem::temp_directory_path() / ("livsearch_report_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto path = folder / name;
  for (const char* suffix : {"", "-wal", "-shm", "-writer.lock"})
    std::filesystem::remove(path.string() + suffix);
  return path;
}

// Removes a fixture database (and its folder once empty) when a test ends.
struct Cleanup {
  std::filesystem::path db;
  ~Cleanup() {
    for (const char* suffix : {"", "-wal", "-shm", "-writer.lock"})
      std::filesystem::remove(db.string() + suffix);
    std::error_code ignored;
    std::filesystem::remove(db.parent_path(), ignored);  // fails while not empty: fine
  }
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A run as a long search leaves it: `genomes` sampled genomes evaluated at
// fidelity 0.3 over 25 generations with lineage, the first fifth also at
// fidelity 1 on two seeds, a failure every 40th evaluation (three reasons),
// a hypervolume per generation, two labelled warm-start genomes.
struct SyntheticRun {
  std::filesystem::path db;
  std::size_t evaluated = 0;  // genomes with an ok evaluation at fidelity 0.3

  SyntheticRun(const std::string& name, std::size_t genomes) : db(fresh_db(name)) {
    db::Store store(db.string());
    Json config = parse_json_text(R"({"name": "big", "seed": 11,
        "objectives": ["perplexity", "cache_bytes", "params"],
        "constraints": {"perplexity": {"max": 40}},
        "search": {"population": 40, "fidelities": [0.3, 1.0], "eta": 3}})",
                                  "fixture");
    db::Store::Transaction batch(store);
    const auto run = store.create_or_open_run("big", config, 11).run;
    const auto space = genome::default_search_space();
    Rng rng(99);
    std::vector<std::string> hashes;
    std::set<std::string> seen;
    for (const char* preset : {"transformer", "lfm2"}) {
      auto g = genome::preset(preset, 128, 8);
      const auto hash = genome::genome_hash(g);
      seen.insert(hash);
      hashes.push_back(hash);
      store.upsert_genome(hash, genome::to_canonical_json(g), genome::summary(g));
      store.label_genome(run.id, hash, std::string("preset ") + preset);
    }
    while (hashes.size() < genomes) {
      auto g = genome::sample(space, rng);
      const auto hash = genome::genome_hash(g);
      if (!seen.insert(hash).second) continue;
      hashes.push_back(hash);
      store.upsert_genome(hash, genome::to_canonical_json(g), genome::summary(g));
    }
    const char* reasons[] = {"non-finite loss at step 17", "out of memory: the plan needs 90 MiB",
                             "decode state does not match the analytic cache size"};
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      const int generation = static_cast<int>(i * 25 / hashes.size());
      store.record_lineage(
          {run.id, hashes[i], generation,
           i < 40 ? std::vector<std::string>{} : std::vector<std::string>{hashes[i - 40], hashes[i - 17]},
           i < 40 ? "sample" : "crossover+mutate"});
      const int64_t id = store.begin_evaluation({run.id, hashes[i], generation, 0.3, "cuda:0", i});
      db::EvaluationOutcome outcome;
      outcome.wall_seconds = 20 + static_cast<double>(i % 7);
      if (i % 40 == 39) {
        outcome.status = db::EvaluationStatus::failed;
        outcome.error = reasons[i % 3];
        store.finish_evaluation(id, outcome);
        continue;
      }
      const double quality = static_cast<double>(rng.integer(0, 1000)) / 1000.0;
      outcome.metrics["perplexity"] = {20 + 40 * quality, "per token"};
      outcome.metrics["cache_bytes"] = {256.0 * static_cast<double>(1 << rng.integer(0, 14)), "bytes"};
      outcome.metrics["params"] = {1e5 * (1 + 30 * (1 - quality)) + static_cast<double>(rng.integer(0, 9999)),
                                   "count"};
      store.finish_evaluation(id, outcome);
      ++evaluated;
      if (i % 5 != 0) continue;
      for (uint64_t seed : {i, i + 100000}) {
        const int64_t full = store.begin_evaluation({run.id, hashes[i], generation + 1, 1.0, "cuda:0", seed});
        db::EvaluationOutcome again = outcome;
        again.metrics["perplexity"].value *= 0.8 + 0.01 * static_cast<double>(seed % 3);
        again.wall_seconds = 60;
        store.finish_evaluation(full, again);
      }
    }
    for (int g = 0; g < 25; ++g) {
      db::GenerationRecord record;
      record.generation = g;
      record.hypervolume = 0.2 + 0.02 * g;
      record.population = {{hashes[0], 0, 1.0}};
      store.record_generation(run.id, record);
    }
    store.set_run_status(run.id, db::RunStatus::finished);
    batch.commit();
  }
};

}  // namespace

TEST_CASE("a 1000-candidate run: every candidate plotted, the front tabled, under 3 MB, nothing fetched") {
  SyntheticRun fixture("big.db", 1000);
  Cleanup cleanup{fixture.db};
  db::Reader reader(fixture.db.string());
  const std::string html = report::build_report(reader, "", "2026-12-03T00:00:00.000Z");
  MESSAGE("1000-candidate report: " << html.size() / 1024 << " KiB");
  CHECK(html.size() < 3u * 1024 * 1024);

  const auto data = report::gather_report_data(reader, "");
  const auto front = search::compute_front(reader, "big", "", false);
  REQUIRE(!front.members.empty());
  CHECK(data.front.size() == front.members.size());
  CHECK(count(html, "<tbody class=\"member\"") == front.members.size());
  // Candidates: every ok genome at 0.3, and the fifth also at 1.
  std::size_t at_full = 0;
  for (const auto& p : data.points) at_full += p.fidelity == 1.0 ? 1 : 0;
  CHECK(data.points.size() == fixture.evaluated + at_full);
  CHECK(at_full == 200);
  // Three objectives: three scatter plots, each holding every point once.
  CHECK(count(html, "class=\"plot scatter\"") == 3);
  std::regex point_in_scatter("class=\"pt[^\"]*\" data-i=\"");
  const auto points =
      std::distance(std::sregex_iterator(html.begin(), html.end(), point_in_scatter), std::sregex_iterator());
  // The front-fidelity view and the every-fidelity view.
  CHECK(count(html, "class=\"plot scatter-all\"") == 3);
  CHECK(static_cast<std::size_t>(points) == 3 * (at_full + data.points.size()));
  CHECK(count(html, "class=\"plot parallel\"") == 1);
  // Failures: 25 of them, three reasons, most frequent first.
  REQUIRE(data.failures.size() == 3);
  CHECK(data.failed_evaluations == 25);
  CHECK(data.failures[0].count >= data.failures[1].count);
  CHECK(html.find("non-finite loss at step 17") != std::string::npos);
  // Rungs and rank correlation.
  CHECK(data.rung_counts.size() == 2);
  CHECK(data.rank_stability.size() == 1);
  CHECK(html.find("id=\"rungs\"") != std::string::npos);
  // Labels of the warm start and a log scale for cache bytes (2^0..2^14 x 256).
  CHECK(html.find(">preset lfm2<") != std::string::npos);
  CHECK(html.find("cache_bytes (bytes) \u2193 better, log scale") != std::string::npos);
  // Hypervolume: one point per generation in each of the two plots.
  CHECK(data.hypervolume.size() == 25);
  CHECK(data.hypervolume.back().evaluation_seconds > data.hypervolume.front().evaluation_seconds);
  // Nothing that loads anything: no src attributes, no links off the page,
  // no CSS imports or url() but the page-local arrowhead, and a CSP that forbids fetching.
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("href=\"http") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  CHECK(count(html, "url(") == count(html, "url(#share-arrow)"));
  CHECK(html.find("content=\"default-src 'none';") != std::string::npos);
  std::regex http("https?://");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), http); it != std::sregex_iterator(); ++it)
    CHECK(html.compare(static_cast<std::size_t>(it->position()), 26, "http://www.w3.org/2000/svg") == 0);
}

TEST_CASE("text from the database is escaped: a label, an error and a config cannot open a tag") {
  const auto path = fresh_db("hostile.db");
  Cleanup cleanup{path};
  const std::string hostile = "</script><script>alert(1)</script><b onmouseover='x'>";
  {
    db::Store store(path.string());
    Json config = parse_json_text(R"({"objectives": ["perplexity", "cache_bytes"]})", "fixture");
    config["note"] = hostile;
    const auto run = store.create_or_open_run("r<1>", config, 1).run;
    auto g = genome::preset("transformer", 64, 2);
    const auto hash = genome::genome_hash(g);
    store.upsert_genome(hash, genome::to_canonical_json(g), hostile);
    store.label_genome(run.id, hash, hostile);
    int64_t id = store.begin_evaluation({run.id, hash, 0, 1.0, hostile, 1});
    db::EvaluationOutcome ok;
    ok.metrics["perplexity"] = {3.0, ""};
    ok.metrics["cache_bytes"] = {100.0, "bytes"};
    store.finish_evaluation(id, ok);
    auto g2 = genome::preset("lfm2", 64, 2);
    store.upsert_genome(genome::genome_hash(g2), genome::to_canonical_json(g2), "x");
    id = store.begin_evaluation({run.id, genome::genome_hash(g2), 0, 1.0, "cpu", 2});
    db::EvaluationOutcome failed;
    failed.status = db::EvaluationStatus::failed;
    failed.error = hostile + "\nsecond line";
    store.finish_evaluation(id, failed);
  }
  db::Reader reader(path.string());
  const std::string html = report::build_report(reader, "", "now");
  CHECK(html.find(hostile) == std::string::npos);
  CHECK(html.find("<script>alert") == std::string::npos);
  CHECK(html.find("<b onmouseover") == std::string::npos);
  CHECK(html.find("&lt;/script&gt;&lt;script&gt;alert(1)") != std::string::npos);
  // The JSON the script reads keeps the text, with '<' written as \u003c.
  CHECK(html.find("\\u003c/script>\\u003cscript>alert(1)") != std::string::npos);
  // Two script elements: the data and the code.
  CHECK(count(html, "<script") == 2);
  CHECK(count(html, "</script>") == 2);
}

TEST_CASE("a run with nothing finished yet renders, saying so") {
  const auto path = fresh_db("empty.db");
  Cleanup cleanup{path};
  {
    db::Store store(path.string());
    Json config = parse_json_text(R"({"objectives": ["perplexity", "cache_bytes"]})", "fixture");
    const auto run = store.create_or_open_run("starting", config, 1).run;
    auto g = genome::preset("transformer", 64, 2);
    store.upsert_genome(genome::genome_hash(g), genome::to_canonical_json(g), genome::summary(g));
    store.begin_evaluation({run.id, genome::genome_hash(g), 0, 1.0, "cpu", 1});
  }
  db::Reader reader(path.string());
  const std::string html = report::build_report(reader, "starting", "now");
  CHECK(html.find("No candidate has finished successfully yet") != std::string::npos);
  CHECK(html.find("No generation has been recorded yet") != std::string::npos);
  CHECK(html.find("The run has no front yet") != std::string::npos);
  CHECK(html.find("0 ok, 0 failed, 1 running") != std::string::npos);
  CHECK_THROWS_AS(report::build_report(reader, "no-such-run", "now"), InputError);
}

TEST_CASE("genome picture: a box per operator, fusion slots and sharing arrows of both kinds") {
  const Json genome = parse_json_text(R"({"d_model": 64, "vocab": 256, "slots": [
      {"class": "sa", "heads": 2, "kv_heads": 2, "window": 0, "qk_norm": false, "rope": true, "differential": false,
       "share_featurizer": null, "share_features": null},
      {"class": "swiglu", "hidden": 172},
      {"fusion": "gate", "ops": [
        {"class": "sa", "heads": 2, "kv_heads": 2, "window": 0, "qk_norm": false, "rope": true, "differential": false,
         "share_featurizer": null, "share_features": {"slot": 0, "op": 0}},
        {"class": "gconv", "kernel": 3, "differential": true}]},
      {"class": "newclass", "knob": 5},
      {"class": "sa", "heads": 2, "kv_heads": 2, "window": 0, "qk_norm": false, "rope": true, "differential": false,
       "share_featurizer": {"slot": 0, "op": 0}, "share_features": null}]})",
                                      "genome");
  const std::string svg = report::genome_picture(genome);
  CHECK(count(svg, "<rect class=\"op\"") == 6);
  CHECK(svg.find("fusion: gate") != std::string::npos);
  CHECK(count(svg, "class=\"share features\"") == 1);
  CHECK(count(svg, "class=\"share featurizer\"") == 1);
  CHECK(svg.find(">gconv (diff)<") != std::string::npos);
  CHECK(svg.find(">newclass<") != std::string::npos);  // a class this build does not know
  CHECK(svg.find(">knob 5<") != std::string::npos);
  CHECK(report::slot_classes(genome) ==
        std::vector<std::vector<std::string>>{{"sa"}, {"swiglu"}, {"sa", "gconv"}, {"newclass"}, {"sa"}});
  CHECK(report::genome_picture(Json()).find("not in the database") != std::string::npos);
}

TEST_CASE("scales: log when values span two decades, ticks inside the range, values mapped monotonically") {
  auto linear = report::fit_scale({3.9, 4.1, 4.4}, 0, 100, true);
  CHECK_FALSE(linear.log);
  auto log = report::fit_scale({256, 4096, 4194304}, 0, 100, true);
  CHECK(log.log);
  CHECK_FALSE(report::fit_scale({256, 4194304}, 0, 100, false).log);
  CHECK_FALSE(report::fit_scale({0, 4194304}, 0, 100, true).log);  // zero has no logarithm
  for (const auto* s : {&linear, &log}) {
    const auto ticks = s->ticks();
    CHECK(ticks.size() >= 2);
    for (double t : ticks) CHECK((t >= s->lo && t <= s->hi));
    CHECK((*s)(s->lo) == doctest::Approx(0));
    CHECK((*s)(s->hi) == doctest::Approx(100));
  }
  CHECK(log(4096) < log(65536));
  CHECK(linear(4.0) < linear(4.2));
  // Pixel axes may run downwards (SVG y).
  auto down = report::fit_scale({1, 2}, 300, 20, false);
  CHECK(down(1.0) > down(2.0));
  auto none = report::fit_scale({}, 0, 10, true);
  CHECK(none.lo == 0);
  CHECK(none.hi == 1);
  CHECK(report::short_number(4194304) == "4.19M");
  CHECK(report::short_number(525824) == "526k");
  CHECK(report::short_number(3.94976) == "3.95");
  CHECK(report::short_number(8192) == "8192");
  CHECK(report::escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;");
}
