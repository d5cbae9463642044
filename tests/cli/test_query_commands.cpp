// End to end: a database written with the db module's Store, queried through
// the real binary (runs, status, pareto, show, export), outputs parsed and
// checked against an independent brute-force Pareto computation.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>

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
  CHECK(lines[0] == "hash,generation,fidelity,feasible,violation,perplexity,accuracy,summary");
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
  CHECK(both.err.find("either a HASH or --pareto") != std::string::npos);
  auto torch = f.run("export --pareto --format pytorch --out x", "export_torch");
  CHECK(torch.exit_code == 2);
  CHECK(torch.err.find("--format: pytorch export is not available yet") != std::string::npos);
  auto xml = f.run("export --pareto --format xml --out x", "export_xml");
  CHECK(xml.exit_code == 2);
  CHECK(xml.err.find("--format: expected one of json, got 'xml'") != std::string::npos);
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
  CHECK(genome::genome_hash(genome::genome_from_json(result["genome"])) == f.hashes[0]);
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
