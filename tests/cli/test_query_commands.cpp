// End to end: a database written with the db module's Store, queried through
// the real binary (runs, status, pareto, show, export), outputs parsed and
// checked against an independent brute-force Pareto computation and, for a run
// with several fidelities and seeds, an independent mean and sample sd.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cli/eval_summary.hpp"
#include "common/format_number.hpp"
#include "common/json_reader.hpp"
#include "common/rng.hpp"
#include "db/connection.hpp"
#include "db/store.hpp"
#include "genome/genome_json.hpp"
#include "genome/presets.hpp"
#include "run_command.hpp"

using namespace livs;

namespace {

// The fixture database: run "alpha" with 36 random candidates (two objectives,
// perplexity min and accuracy max, and a params <= 3e6 constraint), a failed
// and a running evaluation, two recorded generations and lineage; run "beta"
// whose only constraint nobody meets.
struct Fixture {
  std::filesystem::path dir;
  std::string db;
  std::vector<std::string> hashes;                      // alpha's candidates
  std::map<std::string, std::array<double, 3>> values;  // hash -> perplexity, accuracy, params
  std::string failed_hash, running_hash;

  explicit Fixture(const std::string& tag) {
    dir = std::filesystem::temp_directory_path() /
          ("livsearch_query_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    db = (dir / "search.db").string();
    db::Store store(db);
    Json config = parse_json_text(R"({"name": "alpha", "seed": 5,
        "objectives": ["perplexity", {"name": "accuracy", "direction": "max"}],
        "constraints": {"params": {"max": 3e6}}, "search": {"population": 8}})",
                                  "fixture");
    db::Store::Transaction batch(store);  // one commit (one fsync) for the whole fixture
    auto alpha = store.create_or_open_run("alpha", config, 5).run;
    Rng rng(2024);
    std::vector<genome::Genome> genomes;
    std::set<std::string> seen;
    for (const auto& name : genome::preset_names())
      for (int d_model : {32, 64, 96, 128})
        for (int layers : {1, 2}) {
          auto g = genome::preset(name, d_model, layers);
          if (seen.insert(genome::genome_hash(g)).second) genomes.push_back(g);
        }
    REQUIRE(genomes.size() >= 38);
    for (std::size_t i = 0; i < genomes.size(); ++i) {
      std::string hash = genome::genome_hash(genomes[i]);
      store.upsert_genome(hash, genome::to_canonical_json(genomes[i]), genome::summary(genomes[i]));
      if (i + 2 == genomes.size()) {
        failed_hash = hash;
        continue;
      }
      if (i + 1 == genomes.size()) {
        running_hash = hash;
        continue;
      }
      hashes.push_back(hash);
    }
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      // Coarse values so that ties and duplicates occur, as they do in real runs.
      double perplexity = 2.0 + 0.5 * static_cast<double>(rng.integer(0, 12));
      double accuracy = 0.05 * static_cast<double>(rng.integer(0, 19));
      double params = 1e6 * static_cast<double>(rng.integer(1, 5));
      values[hashes[i]] = {perplexity, accuracy, params};
      int generation = static_cast<int>(i / 12);
      int64_t id = store.begin_evaluation({alpha.id, hashes[i], generation, 1.0, "cpu", i});
      db::EvaluationOutcome outcome;
      outcome.metrics["perplexity"] = {perplexity, ""};
      outcome.metrics["accuracy"] = {accuracy, ""};
      outcome.metrics["params"] = {params, "count"};
      outcome.wall_seconds = 1.5;
      store.finish_evaluation(id, outcome);
      store.record_lineage(
          {alpha.id, hashes[i], generation,
           i < 2 ? std::vector<std::string>{} : std::vector<std::string>{hashes[i - 1], hashes[i - 2]},
           i < 2 ? "sample" : "crossover+mutate"});
    }
    int64_t failed = store.begin_evaluation({alpha.id, failed_hash, 2, 1.0, "cpu", 99});
    db::EvaluationOutcome failure;
    failure.status = db::EvaluationStatus::failed;
    failure.error = "non-finite loss";
    store.finish_evaluation(failed, failure);
    store.begin_evaluation({alpha.id, running_hash, 3, 1.0, "cpu", 100});
    for (int g = 0; g < 2; ++g) {
      db::GenerationRecord record;
      record.generation = g;
      record.hypervolume = 0.25 + 0.125 * g;
      record.population = {{hashes[0], 0, 1.0}};
      store.record_generation(alpha.id, record);
    }
    store.set_run_status(alpha.id, db::RunStatus::running);

    Json beta_config = parse_json_text(
        R"({"objectives": ["perplexity"], "constraints": {"params": {"max": 10}}})", "fixture");
    auto beta = store.create_or_open_run("beta", beta_config, 6).run;
    for (std::size_t i = 0; i < 3; ++i) {
      int64_t id = store.begin_evaluation({beta.id, hashes[i], 0, 1.0, "cpu", i});
      db::EvaluationOutcome outcome;
      outcome.metrics["perplexity"] = {3.0 + static_cast<double>(i), ""};
      outcome.metrics["params"] = {1000.0 * static_cast<double>(3 - i), "count"};
      store.finish_evaluation(id, outcome);
    }
    batch.commit();
  }
  ~Fixture() {
    if (!std::getenv("LIVSEARCH_KEEP_TEST_DB")) std::filesystem::remove_all(dir);
  }

  test::CommandResult run(const std::string& args, const std::string& tag) const {
    return test::run_livsearch(args + " --db '" + db + "'", tag);
  }
};

// a dominates b: no worse in both (perplexity min, accuracy max) and better in one.
bool dominates(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  bool no_worse = a[0] <= b[0] && a[1] >= b[1];
  bool better = a[0] < b[0] || a[1] > b[1];
  return no_worse && better;
}

bool feasible(const std::array<double, 3>& v) { return v[2] <= 3e6; }

Json parse_output(const test::CommandResult& result) {
  CAPTURE(result.err);
  CAPTURE(result.out);
  REQUIRE(result.exit_code == 0);
  return parse_json_text(result.out, "stdout");
}

}  // namespace

TEST_CASE("pareto --format json: a mutually non-dominated set that no other evaluation dominates") {
  Fixture f("pareto_json");
  Json out = parse_output(f.run("pareto --run alpha --format json", "pareto_json"));
  CHECK(out["run"] == "alpha");
  CHECK(out["candidates"] == f.hashes.size());
  REQUIRE(out["objectives"].size() == 2);
  CHECK(out["objectives"][1]["direction"] == "max");

  // The expected front, by brute force: feasible candidates no feasible one dominates.
  std::set<std::string> expected;
  for (const auto& h : f.hashes) {
    if (!feasible(f.values[h])) continue;
    bool dominated = false;
    for (const auto& other : f.hashes)
      dominated = dominated || (feasible(f.values[other]) && dominates(f.values[other], f.values[h]));
    if (!dominated) expected.insert(h);
  }
  REQUIRE(!expected.empty());
  std::set<std::string> got;
  for (const auto& member : out["front"]) {
    std::string hash = member["hash"];
    got.insert(hash);
    CHECK(member["feasible"] == true);
    CHECK(member["objectives"]["perplexity"] == f.values[hash][0]);
    CHECK(member["metrics"]["params"]["unit"] == "count");
  }
  CHECK(got == expected);
  CHECK(got.count(f.failed_hash) == 0);
  CHECK(got.count(f.running_hash) == 0);
  // Sorted best first on the first objective.
  for (std::size_t i = 1; i < out["front"].size(); ++i)
    CHECK(out["front"][i - 1]["objectives"]["perplexity"] <= out["front"][i]["objectives"]["perplexity"]);
}

TEST_CASE("pareto: --objectives subset, --feasible-only, csv and table") {
  Fixture f("pareto_opts");
  // One objective: the front is the feasible candidates with the lowest perplexity.
  Json one = parse_output(f.run("pareto --run alpha --objectives perplexity --format json", "pareto_one"));
  double best = 1e9;
  for (const auto& h : f.hashes)
    if (feasible(f.values[h])) best = std::min(best, f.values[h][0]);
  REQUIRE(one["front"].size() >= 1);
  for (const auto& member : one["front"]) CHECK(member["objectives"]["perplexity"] == best);
  CHECK(one["objectives"].size() == 1);

  // Accuracy turned into a minimised objective: the front changes to match.
  Json flipped =
      parse_output(f.run("pareto --run alpha --objectives accuracy:min --format json", "pareto_flip"));
  double lowest = 1e9;
  for (const auto& h : f.hashes)
    if (feasible(f.values[h])) lowest = std::min(lowest, f.values[h][1]);
  for (const auto& member : flipped["front"]) CHECK(member["objectives"]["accuracy"] == lowest);

  auto csv = f.run("pareto --run alpha --format csv", "pareto_csv");
  REQUIRE(csv.exit_code == 0);
  auto lines = test::lines_of(csv.out);
  Json json = parse_output(f.run("pareto --run alpha --format json --feasible-only", "pareto_json2"));
  REQUIRE(lines.size() == json["front"].size() + 1);
  CHECK(
      lines[0] ==
      "hash,generation,fidelity,seeds,feasible,violation,perplexity,perplexity_sd,accuracy,accuracy_sd,label,"
      "summary");
  CHECK(lines[1].rfind(json["front"][0]["hash"].get<std::string>() + ",", 0) == 0);

  auto table = f.run("pareto --run alpha", "pareto_table");
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("perplexity (min)") != std::string::npos);
  CHECK(table.out.find("accuracy (max)") != std::string::npos);
  CHECK(table.out.find(json["front"][0]["hash"].get<std::string>().substr(0, 12)) != std::string::npos);

  auto unknown = f.run("pareto --run alpha --objectives bogus", "pareto_bogus");
  CHECK(unknown.exit_code == 2);
  CHECK(test::lines_of(unknown.err).size() == 1);
  CHECK(unknown.err.find("--objectives: 'bogus'") != std::string::npos);
  auto unrecorded = f.run("pareto --run alpha --objectives decode_ms", "pareto_unrecorded");
  CHECK(unrecorded.exit_code == 2);
  CHECK(unrecorded.err.find("'decode_ms' was not recorded") != std::string::npos);
}

TEST_CASE("pareto: a clear message when no candidate is feasible") {
  Fixture f("pareto_infeasible");
  auto strict = f.run("pareto --run beta --feasible-only", "infeasible_strict");
  CHECK(strict.exit_code == 1);
  CHECK(strict.out.empty());
  CHECK(strict.err.find("no candidate of run 'beta' is feasible") != std::string::npos);
  CHECK(strict.err.find("params <= 10") != std::string::npos);

  // Without --feasible-only: the least-violating candidate, with a note.
  Json out = parse_output(f.run("pareto --run beta --format json", "infeasible_loose"));
  CHECK(out["feasible"] == 0);
  REQUIRE(out["front"].size() == 1);
  CHECK(out["front"][0]["hash"] == f.hashes[2]);  // params 1000: the smallest excess
  CHECK(out["front"][0]["feasible"] == false);
  auto noted = f.run("pareto --run beta", "infeasible_note");
  CHECK(noted.err.find("showing the least-violating") != std::string::npos);
}

TEST_CASE("runs and status report counts, generation, best values and hypervolume") {
  Fixture f("status");
  Json runs = parse_output(f.run("runs --format json", "runs_json"));
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["name"] == "alpha");
  CHECK(runs[0]["evaluations"]["ok"] == f.hashes.size());
  CHECK(runs[0]["evaluations"]["failed"] == 1);
  CHECK(runs[0]["evaluations"]["running"] == 1);
  CHECK(runs[0]["generation"] == 1);
  CHECK(runs[1]["name"] == "beta");
  CHECK(runs[1]["generation"].is_null());
  auto runs_table = f.run("runs", "runs_table");
  CHECK(runs_table.out.find("alpha") != std::string::npos);

  Json status = parse_output(f.run("status --run alpha --format json", "status_json"));
  CHECK(status["generation"] == 1);
  CHECK(status["evaluations"]["ok"] == f.hashes.size());
  CHECK(status["evaluations"]["failed"] == 1);
  CHECK(status["evaluations"]["running"] == 1);
  CHECK(status["hypervolume"] == 0.375);
  CHECK(status["running"][0]["hash"] == f.running_hash);
  double best_perplexity = 1e9, best_accuracy = -1;
  for (const auto& h : f.hashes) {
    if (!feasible(f.values[h])) continue;
    best_perplexity = std::min(best_perplexity, f.values[h][0]);
    best_accuracy = std::max(best_accuracy, f.values[h][1]);
  }
  CHECK(status["best_among_feasible"] == true);
  CHECK(status["best"]["perplexity"]["value"] == best_perplexity);
  CHECK(status["best"]["accuracy"]["value"] == best_accuracy);

  CHECK(status["running"][0]["stale"] == false);  // just begun
  CHECK(status["running"][0]["heartbeat_age_seconds"].get<double>() < 60);

  // The default run is the most recent one.
  auto table = f.run("status", "status_table");
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("beta") != std::string::npos);
  CHECK(table.out.find("no candidate is feasible") != std::string::npos);
}

TEST_CASE("show: genome, summary, metrics and lineage by hash prefix") {
  Fixture f("show");
  const std::string& hash = f.hashes[5];
  Json out = parse_output(f.run("show " + hash.substr(0, 10) + " --format json", "show_json"));
  CHECK(out["hash"] == hash);
  CHECK(genome::genome_hash(genome::genome_from_json(out["genome"])) == hash);
  REQUIRE(out["evaluations"].size() == 1);
  CHECK(out["evaluations"][0]["run"] == "alpha");
  CHECK(out["evaluations"][0]["metrics"]["perplexity"]["value"] == f.values[hash][0]);
  REQUIRE(out["lineage"].size() == 1);
  CHECK(out["lineage"][0]["operator"] == "crossover+mutate");
  CHECK(out["lineage"][0]["parents"] == Json::array({f.hashes[4], f.hashes[3]}));

  auto table = f.run("show " + f.failed_hash, "show_table");
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("error: non-finite loss") != std::string::npos);
  CHECK(table.out.find("\"slots\"") != std::string::npos);

  auto missing = f.run("show ffffffffff", "show_missing");
  CHECK(missing.exit_code == 2);
  CHECK(test::lines_of(missing.err).size() == 1);
  CHECK(missing.err.find("no genome with hash 'ffffffffff'") != std::string::npos);
}

TEST_CASE("export: one genome or the Pareto front, as files eval accepts, named by hash") {
  Fixture f("export");
  auto out_dir = f.dir / "exported";
  auto one = f.run("export " + f.hashes[7].substr(0, 12) + " --format json --out '" + out_dir.string() + "'",
                   "export_one");
  CAPTURE(one.err);
  REQUIRE(one.exit_code == 0);
  auto file = out_dir / (f.hashes[7] + ".json");
  REQUIRE(std::filesystem::exists(file));
  CHECK(genome::genome_hash(genome::genome_from_file(file.string())) == f.hashes[7]);

  auto front_dir = f.dir / "front";
  auto front =
      f.run("export --pareto --run alpha --format json --out '" + front_dir.string() + "'", "export_front");
  CAPTURE(front.err);
  REQUIRE(front.exit_code == 0);
  Json pareto = parse_output(f.run("pareto --run alpha --format json", "export_pareto"));
  std::set<std::string> written;
  for (const auto& entry : std::filesystem::directory_iterator(front_dir)) {
    auto g = genome::genome_from_file(entry.path().string());
    CHECK(entry.path().filename().string() == genome::genome_hash(g) + ".json");
    written.insert(genome::genome_hash(g));
  }
  std::set<std::string> expected;
  for (const auto& m : pareto["front"]) expected.insert(m["hash"].get<std::string>());
  CHECK(written == expected);

  auto both = f.run("export " + f.hashes[0] + " --pareto --out x", "export_both");
  CHECK(both.exit_code == 2);
  CHECK(both.err.find("either a HASH, a GENOME.json or --pareto") != std::string::npos);
  // PyTorch: a folder per front member (without weights: none were given).
  auto torch_dir = f.dir / "front_torch";
  auto torch = f.run("export --pareto --run alpha --format pytorch --out '" + torch_dir.string() + "'",
                     "export_torch");
  CAPTURE(torch.err);
  REQUIRE(torch.exit_code == 0);
  for (const auto& hash : expected) {
    for (const char* file : {"model.py", "config.json", "README.md"})
      CHECK(std::filesystem::exists(torch_dir / hash / file));
    CHECK(!std::filesystem::exists(torch_dir / hash / "model.safetensors"));
  }
  CHECK(test::lines_of(torch.out).size() == expected.size());
  if (expected.size() > 1) {
    auto weights = f.dir / "w.safetensors";
    std::ofstream(weights) << "whatever";
    auto many = f.run("export --pareto --run alpha --format pytorch --weights '" + weights.string() +
                          "' --out '" + torch_dir.string() + "'",
                      "export_torch_weights");
    CHECK(many.exit_code == 2);
    CHECK(many.err.find("--weights: one weights file fits one genome") != std::string::npos);
  }
  auto xml = f.run("export --pareto --format xml --out x", "export_xml");
  CHECK(xml.exit_code == 2);
  CHECK(xml.err.find("--format: expected one of json, pytorch, got 'xml'") != std::string::npos);
}

TEST_CASE("an exported genome runs through livsearch eval") {
  Fixture f("export_eval");
  auto out_dir = f.dir / "one";
  REQUIRE(f.run("export " + f.hashes[0] + " --out '" + out_dir.string() + "'", "export_eval_1").exit_code ==
          0);
  auto file = out_dir / (f.hashes[0] + ".json");
  auto eval = test::run_livsearch(
      "eval '" + file.string() + "' --config tests/cli/tiny_config.json --format json", "export_eval_2");
  CAPTURE(eval.err);
  REQUIRE(eval.exit_code == 0);
  Json result = parse_json_text(eval.out, "eval stdout");
  // One result per architecture given (an array), or the result itself.
  const Json& architecture = result.is_array() ? result.at(0) : result;
  CHECK(genome::genome_hash(genome::genome_from_json(architecture["genome"])) == f.hashes[0]);
}

TEST_CASE("queries run while a writer holds an open transaction in this process") {
  Fixture f("locked");
  db::Store writer(f.db);
  auto run = writer.run_by_name("alpha");
  REQUIRE(run);
  db::Store::Transaction open_transaction(writer);
  writer.mark_running_interrupted(run->id);  // an uncommitted write holds the write lock
  writer.begin_evaluation({run->id, f.hashes[0], 4, 1.0, "cpu", 1});
  for (const char* command : {"status --run alpha", "pareto --run alpha --format json", "runs"}) {
    auto result = f.run(command, "locked");
    CAPTURE(command);
    CAPTURE(result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.err.find("locked") == std::string::npos);
  }
  auto show = test::run_livsearch("show " + f.hashes[1] + " --db '" + f.db + "'", "locked_show");
  CHECK(show.exit_code == 0);
  // They saw the committed state: one running evaluation, not the new one.
  Json status = parse_output(f.run("status --run alpha --format json", "locked_status"));
  CHECK(status["evaluations"]["running"] == 1);
  CHECK(status["evaluations"]["interrupted"] == 0);
}

TEST_CASE("query commands: bad databases and arguments are one-line errors") {
  Fixture f("errors");
  auto text = f.dir / "notes.txt";
  std::ofstream(text) << "just text, definitely not SQLite, long enough to have a header........\n";
  struct Case {
    std::string args, expected;
  };
  std::vector<Case> cases = {
      {"status --db '" + text.string() + "'", "not a SQLite database"},
      {"pareto --db '" + (f.dir / "missing.db").string() + "'", "no such database file"},
      {"runs", "missing --db FILE"},
      {"status --db '" + f.db + "' --run gamma", "no run named 'gamma' (runs: alpha, beta)"},
      {"pareto --db '" + f.db + "' --format xml", "--format: expected one of table, json, csv, got 'xml'"},
      {"show --db '" + f.db + "'", "missing HASH"},
      {"runs --db '" + f.db + "' --bogus", "bogus"},
  };
  {
    // A database from a newer livsearch: our schema, a higher version number.
    std::string future = (f.dir / "future.db").string();
    { db::Store store(future); }
    db::Connection raw(future, SQLITE_OPEN_READWRITE, 1000);
    raw.exec("PRAGMA user_version = 42");
    cases.push_back({"runs --db '" + future + "'", "newer livsearch (schema version 42"});
  }
  for (const auto& c : cases) {
    auto result = test::run_livsearch(c.args, "errors");
    CAPTURE(c.args);
    CAPTURE(result.err);
    CHECK(result.exit_code == 2);
    CHECK(test::lines_of(result.err).size() == 1);
    CHECK(result.err.rfind("error: ", 0) == 0);
    CHECK(result.err.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("status flags a running evaluation whose heartbeat stopped long ago") {
  Fixture f("stale");
  {
    db::Connection raw(f.db, SQLITE_OPEN_READWRITE, 1000);
    raw.exec("UPDATE evaluations SET heartbeat_at = '2020-01-01T00:00:00.000Z' WHERE status = 'running'");
  }
  Json status = parse_output(f.run("status --run alpha --format json", "stale_json"));
  REQUIRE(status["running"].size() == 1);
  CHECK(status["running"][0]["stale"] == true);
  CHECK(status["running"][0]["heartbeat_age_seconds"].get<double>() > 3600 * 24 * 365);
  auto table = f.run("status --run alpha", "stale_table");
  CHECK(table.out.find("the search may have stopped") != std::string::npos);
  CHECK(table.out.find("(stale)") != std::string::npos);
}

namespace {

// A run with two stages: the search at fidelity 0.3 (12 genomes, one seed
// each, two generations that refused genomes before training) and a final
// stage at fidelity 1 (genomes 0-4 on three seeds, genome 5 on one; genome 1's
// first seed trained twice, the later one standing), a failed and a running
// final evaluation, and two labelled warm-start genomes.
struct Staged {
  std::filesystem::path dir;
  std::string db;
  std::vector<std::string> hashes;
  std::map<std::string, std::array<double, 3>> low;  // fidelity 0.3: perplexity, accuracy, params
  // Fidelity 1, per seed (the value that stands), and the seeds themselves.
  std::map<std::string, std::vector<std::array<double, 3>>> full;
  std::map<std::string, std::vector<uint64_t>> full_seeds;

  Staged(const std::string& tag) {
    dir = std::filesystem::temp_directory_path() /
          ("livsearch_query_staged_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    db = (dir / "staged.db").string();
    db::Store store(db);
    Json config = parse_json_text(R"({"objectives": ["perplexity", {"name": "accuracy", "direction": "max"}],
        "constraints": {"params": {"max": 4.5e6}}})",
                                  "fixture");
    db::Store::Transaction batch(store);
    auto run = store.create_or_open_run("staged", config, 9).run;
    std::set<std::string> seen;
    for (const auto& name : genome::preset_names())
      for (int d_model : {32, 64, 96}) {
        auto g = genome::preset(name, d_model, 1);
        std::string hash = genome::genome_hash(g);
        if (hashes.size() == 12 || !seen.insert(hash).second) continue;
        store.upsert_genome(hash, genome::to_canonical_json(g), genome::summary(g));
        hashes.push_back(hash);
      }
    REQUIRE(hashes.size() == 12);
    auto finish = [&](int64_t id, const std::array<double, 3>& v) {
      db::EvaluationOutcome outcome;
      outcome.metrics["perplexity"] = {v[0], ""};
      outcome.metrics["accuracy"] = {v[1], ""};
      outcome.metrics["params"] = {v[2], "count"};
      store.finish_evaluation(id, outcome);
    };
    Rng rng(77);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      std::array<double, 3> v = {3.0 + 0.25 * static_cast<double>(rng.integer(0, 8)),
                                 0.05 * static_cast<double>(rng.integer(0, 12)),
                                 1e6 * static_cast<double>(rng.integer(1, 5))};
      low[hashes[i]] = v;
      finish(store.begin_evaluation({run.id, hashes[i], static_cast<int>(i / 6), 0.3, "cpu", 100 + i}), v);
    }
    // Final stage: genome k's base values, then a small seed-to-seed spread.
    // Genome 4 beats all on both objectives but breaks the params constraint.
    const std::array<std::array<double, 3>, 6> base = {{{3.0, 0.40, 2e6},
                                                        {3.5, 0.45, 1e6},
                                                        {4.0, 0.42, 1e6},
                                                        {4.2, 0.60, 3e6},
                                                        {2.5, 0.70, 5e6},
                                                        {3.8, 0.50, 2e6}}};
    const std::array<double, 3> dp = {0.0, 0.1, -0.05}, da = {0.0, -0.01, 0.02};
    for (std::size_t k = 0; k < base.size(); ++k) {
      for (std::size_t r = 0; r < (k == 5 ? 1u : 3u); ++r) {
        std::array<double, 3> v = {base[k][0] + dp[r] * static_cast<double>(k + 1) / 3.0, base[k][1] + da[r],
                                   base[k][2]};
        uint64_t seed = 1000 + 10 * k + r;
        full[hashes[k]].push_back(v);
        full_seeds[hashes[k]].push_back(seed);
        finish(store.begin_evaluation({run.id, hashes[k], 2, 1.0, "cpu", seed}), v);
      }
    }
    std::array<double, 3> repeat = {base[1][0] + 0.2, base[1][1], base[1][2]};  // seed 1010 again
    full[hashes[1]][0] = repeat;
    finish(store.begin_evaluation({run.id, hashes[1], 2, 1.0, "cpu", 1010}), repeat);
    int64_t failed = store.begin_evaluation({run.id, hashes[6], 2, 1.0, "cpu", 1060});
    db::EvaluationOutcome failure;
    failure.status = db::EvaluationStatus::failed;
    failure.error = "out of memory";
    store.finish_evaluation(failed, failure);
    store.begin_evaluation({run.id, hashes[7], 2, 1.0, "cpu", 1070});
    db::GenerationRecord g0;
    g0.generation = 0;
    g0.rejected = 5;
    g0.rejected_by = {{"params", 4}, {"cache_bytes", 1}};
    store.record_generation(run.id, g0);
    db::GenerationRecord g1;
    g1.generation = 1;
    g1.rejected = 3;
    g1.rejected_by = {{"params", 3}};
    store.record_generation(run.id, g1);
    store.label_genome(run.id, hashes[0], "preset transformer");
    store.label_genome(run.id, hashes[3], "file winner.json");
    batch.commit();
  }
  ~Staged() {
    if (!std::getenv("LIVSEARCH_KEEP_TEST_DB")) std::filesystem::remove_all(dir);
  }

  test::CommandResult run(const std::string& args, const std::string& tag) const {
    return test::run_livsearch(args + " --db '" + db + "'", tag);
  }

  // Mean and sample standard deviation of one metric over a genome's seeds at
  // fidelity 1, computed here independently of the CLI.
  std::pair<double, double> mean_sd(const std::string& hash, std::size_t metric) const {
    const auto& seeds = full.at(hash);
    double sum = 0;
    for (const auto& v : seeds) sum += v[metric];
    double mean = sum / static_cast<double>(seeds.size());
    double squares = 0;
    for (const auto& v : seeds) squares += (v[metric] - mean) * (v[metric] - mean);
    double sd = seeds.size() > 1 ? std::sqrt(squares / static_cast<double>(seeds.size() - 1)) : 0.0;
    return {mean, sd};
  }
  std::array<double, 3> means(const std::string& hash) const {
    return {mean_sd(hash, 0).first, mean_sd(hash, 1).first, full.at(hash)[0][2]};
  }
};

// What the CLI prints for a mean and sd over three seeds.
std::string format_mean_sd_for_test(double mean, double sd) {
  cli::SeedSummary summary;
  summary.n = 3;
  summary.mean = mean;
  summary.sd = sd;
  return cli::format_mean_sd(summary);
}

// Feasible (params <= 4.5e6) points that no feasible point dominates.
std::set<std::string> brute_front(const std::map<std::string, std::array<double, 3>>& points) {
  auto ok = [](const std::array<double, 3>& v) { return v[2] <= 4.5e6; };
  std::set<std::string> out;
  for (const auto& [hash, v] : points) {
    if (!ok(v)) continue;
    bool dominated = false;
    for (const auto& [other, w] : points) dominated = dominated || (ok(w) && dominates(w, v));
    if (!dominated) out.insert(hash);
  }
  return out;
}

}  // namespace

TEST_CASE("pareto ranks at the highest fidelity, seeds averaged with their sample sd, --fidelity switches") {
  Staged f("pareto");
  Json out = parse_output(f.run("pareto --format json", "staged_json"));
  CHECK(out["run"] == "staged");
  CHECK(out["fidelity"] == 1.0);
  CHECK(out["fidelities"] == Json::array({0.3, 1.0}));
  CHECK(out["candidates"] == 6);  // genomes with an ok evaluation at 1: not the failed or running one
  std::map<std::string, std::array<double, 3>> means;
  for (const auto& [hash, seeds] : f.full) means[hash] = f.means(hash);
  std::set<std::string> expected = brute_front(means);
  REQUIRE(expected.count(f.hashes[0]) == 1);  // by design of the values
  REQUIRE(expected.count(f.hashes[1]) == 1);
  REQUIRE(expected.count(f.hashes[3]) == 1);
  std::set<std::string> got;
  for (const auto& member : out["front"]) {
    std::string hash = member["hash"];
    CAPTURE(hash);
    got.insert(hash);
    REQUIRE(f.full.count(hash) == 1);
    CHECK(member["fidelity"] == 1.0);
    CHECK(member["seeds"] == f.full_seeds[hash].size());  // genome 1's repeated seed counts once
    auto [perplexity, perplexity_sd] = f.mean_sd(hash, 0);
    auto [accuracy, accuracy_sd] = f.mean_sd(hash, 1);
    CHECK(member["objectives"]["perplexity"].get<double>() == doctest::Approx(perplexity).epsilon(1e-12));
    CHECK(member["objectives"]["accuracy"].get<double>() == doctest::Approx(accuracy).epsilon(1e-12));
    CHECK(member["spread"]["perplexity"].get<double>() == doctest::Approx(perplexity_sd).epsilon(1e-9));
    CHECK(member["spread"]["accuracy"].get<double>() == doctest::Approx(accuracy_sd).epsilon(1e-9));
    CHECK(member["metrics"]["perplexity"]["value"].get<double>() == doctest::Approx(perplexity));
    CHECK(member["metrics"]["params"]["unit"] == "count");
    REQUIRE(member["per_seed"].size() == f.full_seeds[hash].size());
    std::set<uint64_t> seeds;
    int64_t latest = 0;
    for (const auto& s : member["per_seed"]) {
      seeds.insert(s["seed"].get<uint64_t>());
      latest = std::max(latest, s["evaluation_id"].get<int64_t>());
    }
    CHECK(seeds == std::set<uint64_t>(f.full_seeds[hash].begin(), f.full_seeds[hash].end()));
    CHECK(member["evaluation_id"] == latest);
    if (hash == f.hashes[0])
      CHECK(member["label"] == "preset transformer");
    else if (hash == f.hashes[3])
      CHECK(member["label"] == "file winner.json");
    else
      CHECK(member["label"].is_null());
  }
  CHECK(got == expected);
  // Genome 1: the later evaluation of seed 1010 stands (perplexity 3.7, not 3.5).
  for (const auto& member : out["front"])
    if (member["hash"] == f.hashes[1])
      for (const auto& s : member["per_seed"])
        if (s["seed"] == 1010) CHECK(s["metrics"]["perplexity"] == 3.7);

  auto table = f.run("pareto", "staged_table");
  CAPTURE(table.out);
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("run 'staged': " + std::to_string(expected.size()) +
                       " non-dominated of 6 candidates at fidelity 1 (mean over 1 to 3 seeds; 5 feasible; "
                       "the run also has fidelity 0.3: --fidelity 0.3)") != std::string::npos);
  CHECK(table.out.find("seeds") != std::string::npos);
  CHECK(table.out.find("preset transformer") != std::string::npos);
  CHECK(table.out.find("file winner.json") != std::string::npos);
  auto [p0, sd0] = f.mean_sd(f.hashes[0], 0);
  CHECK(table.out.find(format_mean_sd_for_test(p0, sd0)) != std::string::npos);

  auto csv = f.run("pareto --format csv", "staged_csv");
  REQUIRE(csv.exit_code == 0);
  auto lines = test::lines_of(csv.out);
  REQUIRE(lines.size() == expected.size() + 1);
  CHECK(
      lines[0] ==
      "hash,generation,fidelity,seeds,feasible,violation,perplexity,perplexity_sd,accuracy,accuracy_sd,label,"
      "summary");

  // The search stage: twelve genomes, one seed each, no spread.
  Json low = parse_output(f.run("pareto --fidelity 0.3 --format json", "staged_low"));
  CHECK(low["fidelity"] == 0.3);
  CHECK(low["candidates"] == 12);
  std::set<std::string> low_got;
  for (const auto& member : low["front"]) {
    low_got.insert(member["hash"].get<std::string>());
    CHECK(member["seeds"] == 1);
    CHECK(member["spread"]["perplexity"] == 0.0);
    CHECK(member["objectives"]["perplexity"] == f.low[member["hash"]][0]);
  }
  CHECK(low_got == brute_front(f.low));
  auto low_table = f.run("pareto --fidelity 0.3", "staged_low_table");
  CHECK(low_table.out.find("candidates at fidelity 0.3 (") != std::string::npos);
  CHECK(low_table.out.find("the run also has fidelity 1: --fidelity 1") != std::string::npos);

  auto missing = f.run("pareto --fidelity 0.5", "staged_missing");
  CHECK(missing.exit_code == 2);
  CHECK(test::lines_of(missing.err).size() == 1);
  CHECK(missing.err.find(
            "run 'staged' has no successful evaluation at fidelity 0.5 (it has fidelity 0.3, 1)") !=
        std::string::npos);
  auto bad = f.run("pareto --fidelity half", "staged_bad");
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--fidelity: expected") != std::string::npos);

  // export --pareto writes each front member once.
  auto front_dir = f.dir / "front";
  auto exported = f.run("export --pareto --out '" + front_dir.string() + "'", "staged_export");
  CAPTURE(exported.err);
  REQUIRE(exported.exit_code == 0);
  CHECK(test::lines_of(exported.out).size() == expected.size());
  std::set<std::string> written;
  for (const auto& entry : std::filesystem::directory_iterator(front_dir))
    written.insert(entry.path().stem().string());
  CHECK(written == expected);
}

TEST_CASE("status: rejected before training, evaluations per fidelity, labels, best means at fidelity 1") {
  Staged f("status");
  Json status = parse_output(f.run("status --format json", "staged_status_json"));
  const Json& rejected = status["rejected_before_training"];
  CHECK(rejected["total"] == 8);
  CHECK(rejected["by_metric"] == Json{{"cache_bytes", 1}, {"params", 7}});  // by name
  REQUIRE(rejected["per_generation"].size() == 2);
  CHECK(rejected["per_generation"][0]["rejected"] == 5);
  CHECK(rejected["per_generation"][1]["by_metric"] == Json{{"params", 3}});

  REQUIRE(status["fidelities"].size() == 2);
  CHECK(status["fidelities"][0]["fidelity"] == 0.3);
  CHECK(status["fidelities"][0]["ok"] == 12);
  const Json& final_stage = status["fidelities"][1];
  CHECK(final_stage["fidelity"] == 1.0);
  CHECK(final_stage["ok"] == 17);  // 5 x 3 seeds, 1, and seed 1010 again
  CHECK(final_stage["failed"] == 1);
  CHECK(final_stage["running"] == 1);
  CHECK(final_stage["genomes"] == 6);
  CHECK(final_stage["fewest_seeds"] == 1);
  CHECK(final_stage["most_seeds"] == 3);

  REQUIRE(status["labels"].size() == 2);
  CHECK(status["labels"][0] == Json{{"hash", f.hashes[3]}, {"label", "file winner.json"}});
  CHECK(status["labels"][1] == Json{{"hash", f.hashes[0]}, {"label", "preset transformer"}});

  // Best means among feasible genomes at fidelity 1 (genome 4 breaks params).
  CHECK(status["best_fidelity"] == 1.0);
  CHECK(status["best_among_feasible"] == true);
  std::string best_perplexity, best_accuracy;
  for (const auto& [hash, seeds] : f.full) {
    auto m = f.means(hash);
    if (m[2] > 4.5e6) continue;
    if (best_perplexity.empty() || m[0] < f.means(best_perplexity)[0]) best_perplexity = hash;
    if (best_accuracy.empty() || m[1] > f.means(best_accuracy)[1]) best_accuracy = hash;
  }
  CHECK(status["best"]["perplexity"]["hash"] == best_perplexity);
  CHECK(status["best"]["perplexity"]["value"].get<double>() == doctest::Approx(f.means(best_perplexity)[0]));
  CHECK(status["best"]["perplexity"]["sd"].get<double>() ==
        doctest::Approx(f.mean_sd(best_perplexity, 0).second));
  CHECK(status["best"]["perplexity"]["label"] == "preset transformer");
  CHECK(status["best"]["accuracy"]["hash"] == best_accuracy);
  CHECK(status["best"]["accuracy"]["value"].get<double>() == doctest::Approx(f.means(best_accuracy)[1]));

  auto table = f.run("status", "staged_status_table");
  CAPTURE(table.out);
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("rejected     8 before training (params 7, cache_bytes 1)") != std::string::npos);
  CHECK(table.out.find("fidelity 0.3: 12 ok; fidelity 1: 17 ok, 1 failed, 1 running (6 genomes, 1 to 3 seeds "
                       "each)") != std::string::npos);
  CHECK(table.out.find("labels       file winner.json (" + f.hashes[3].substr(0, 12) +
                       "), preset transformer (" + f.hashes[0].substr(0, 12) + ")") != std::string::npos);
  CHECK(table.out.find("best values at fidelity 1:") != std::string::npos);
}

namespace {

// Kendall's tau-b straight from its definition, independently of
// search/rank_correlation: sign products over every pair, ties counted apart.
double tau_b_for_test(const std::vector<double>& x, const std::vector<double>& y) {
  REQUIRE(x.size() == y.size());
  double concordant = 0, discordant = 0, tied_x = 0, tied_y = 0, pairs = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) {
      pairs += 1;
      double dx = x[i] - x[j], dy = y[i] - y[j];
      if (dx == 0) tied_x += 1;
      if (dy == 0) tied_y += 1;
      if (dx * dy > 0) concordant += 1;
      if (dx * dy < 0) discordant += 1;
    }
  return (concordant - discordant) / std::sqrt((pairs - tied_x) * (pairs - tied_y));
}

}  // namespace

TEST_CASE("status: rank stability between fidelity 0.3 and 1 is Kendall's tau-b of the seed means") {
  Staged f("stability");
  Json status = parse_output(f.run("status --format json", "staged_stability_json"));
  CAPTURE(status["rank_stability"].dump());
  REQUIRE(status["rank_stability"].size() == 1);
  const Json& pair = status["rank_stability"][0];
  CHECK(pair["from"] == 0.3);
  CHECK(pair["to"] == 1.0);
  // Genomes 0-5: the failed (6) and running (7) final evaluations are not ok.
  CHECK(pair["genomes"] == 6);
  REQUIRE(pair["tau"].size() == 2);  // the run's objectives, nothing else
  const std::array<std::string, 2> objectives = {"perplexity", "accuracy"};
  std::array<double, 2> taus{};
  for (std::size_t m = 0; m < objectives.size(); ++m) {
    std::vector<double> low, high;
    for (std::size_t k = 0; k < 6; ++k) {
      low.push_back(f.low.at(f.hashes[k])[m]);
      high.push_back(f.mean_sd(f.hashes[k], m).first);
    }
    double expected = tau_b_for_test(low, high);
    taus[m] = expected;
    CAPTURE(objectives[m]);
    REQUIRE(std::isfinite(expected));
    REQUIRE(pair["tau"][objectives[m]].is_number());
    CHECK(pair["tau"][objectives[m]].get<double>() == doctest::Approx(expected).epsilon(1e-12));
  }

  auto table = f.run("status", "staged_stability_table");
  CAPTURE(table.out);
  REQUIRE(table.exit_code == 0);
  auto two_decimals = [](double tau) { return format_number(std::round(tau * 100.0) / 100.0 + 0.0); };
  CHECK(table.out.find("rank stability  fidelity 0.3 -> 1: 6 genomes, Kendall tau perplexity " +
                       two_decimals(taus[0]) + ", accuracy " + two_decimals(taus[1]) + "\n") !=
        std::string::npos);

  // One fidelity: nothing to compare, no line and an empty list.
  Fixture single("stability_single");
  Json alpha = parse_output(single.run("status --run alpha --format json", "single_stability_json"));
  CHECK(alpha["rank_stability"] == Json::array());
  CHECK(single.run("status --run alpha", "single_stability_table").out.find("rank stability") ==
        std::string::npos);
}

TEST_CASE("show: a genome's labels, one row per seed and the mean over seeds at each fidelity") {
  Staged f("show");
  Json out = parse_output(f.run("show " + f.hashes[0] + " --format json", "staged_show_json"));
  CHECK(out["labels"] == Json::array({Json{{"run", "staged"}, {"label", "preset transformer"}}}));
  CHECK(out["evaluations"].size() == 4);
  REQUIRE(out["by_fidelity"].size() == 2);
  CHECK(out["by_fidelity"][0]["fidelity"] == 0.3);
  CHECK(out["by_fidelity"][0]["seeds"] == 1);
  const Json& full = out["by_fidelity"][1];
  CHECK(full["fidelity"] == 1.0);
  CHECK(full["seeds"] == 3);
  auto [mean, sd] = f.mean_sd(f.hashes[0], 0);
  CHECK(full["metrics"]["perplexity"]["mean"].get<double>() == doctest::Approx(mean));
  CHECK(full["metrics"]["perplexity"]["sd"].get<double>() == doctest::Approx(sd));

  Json repeated = parse_output(f.run("show " + f.hashes[1] + " --format json", "staged_show_repeat"));
  CHECK(repeated["evaluations"].size() == 5);       // every evaluation is listed
  CHECK(repeated["by_fidelity"][1]["seeds"] == 3);  // the repeated seed counts once
  CHECK(repeated["labels"].empty());

  auto table = f.run("show " + f.hashes[0], "staged_show_table");
  CAPTURE(table.out);
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("labels   preset transformer in run 'staged'") != std::string::npos);
  CHECK(table.out.find("run 'staged', fidelity 0.3: 1 evaluation\n") != std::string::npos);
  CHECK(table.out.find("run 'staged', fidelity 1: 3 evaluations\n") != std::string::npos);
  CHECK(table.out.find("3 seeds") != std::string::npos);
  CHECK(table.out.find(format_mean_sd_for_test(mean, sd)) != std::string::npos);
  for (uint64_t seed : f.full_seeds[f.hashes[0]])
    CHECK(table.out.find(std::to_string(seed)) != std::string::npos);

  auto failed = f.run("show " + f.hashes[6], "staged_show_failed");
  CHECK(failed.out.find("error: out of memory") != std::string::npos);
}
