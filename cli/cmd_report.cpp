// livsearch report --db FILE [--run NAME] --out report.html: one self-contained
// HTML file showing a run (report/report.hpp). Reads the database read-only,
// so it works while the search is writing; the file is written beside its
// final name and renamed into place, so nobody opens half a report.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/command.hpp"
#include "cli/query_common.hpp"
#include "common/input_error.hpp"
#include "common/path_checks.hpp"
#include "db/connection.hpp"
#include "db/store.hpp"
#include "report/report.hpp"

namespace livs::cli {

int run_report(int argc, char** argv) {
  cxxopts::Options options(
      argv[0],
      "Write one self-contained HTML file that shows a run: Pareto fronts, hypervolume,\n"
      "fidelities, the front as a table with each genome drawn, composition, failures,\n"
      "config. Read-only: safe while the search runs.");
  options.add_options()("db", "the database file", cxxopts::value<std::string>())(
      "run", "the run (default: the most recent)", cxxopts::value<std::string>()->default_value(""))(
      "out", "the HTML file to write", cxxopts::value<std::string>())("h,help", "show this help");
  cxxopts::ParseResult args;
  if (!parse_arguments(options, argc, argv, args)) return 0;
  std::string db_path = required_db(args, argv[0]);
  if (!args.count("out") || args["out"].as<std::string>().empty())
    throw InputError(argv[0], "", std::string("missing --out FILE (see '") + argv[0] + " --help')");
  const std::filesystem::path out = args["out"].as<std::string>();
  if (out.has_parent_path() && !is_folder(out.parent_path()))
    throw InputError(out.string(), "", "the folder " + out.parent_path().string() + " does not exist");

  std::string html;
  {
    // The reader is closed before the file is written: the database is held
    // only while it is read.
    db::Reader reader(db_path);
    db::Reader::Snapshot snapshot(reader);  // one consistent state of a run being written
    html = report::build_report(reader, args["run"].as<std::string>(), db::utc_now_iso8601());
  }
  const std::filesystem::path partial = out.string() + ".partial";
  {
    std::ofstream file(partial, std::ios::binary | std::ios::trunc);
    if (!file) throw InputError(out.string(), "", "cannot write the file");
    file << html;
    file.close();
    if (!file) {
      std::error_code ignored;
      std::filesystem::remove(partial, ignored);
      throw InputError(out.string(), "", "writing the file failed (disk full?)");
    }
  }
  std::error_code error;
  std::filesystem::rename(partial, out, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(partial, ignored);
    throw InputError(out.string(), "", "cannot put the report there: " + error.message());
  }
  std::cout << "wrote " << out.string() << " (" << (html.size() + 1023) / 1024 << " KiB)\n";
  return 0;
}

}  // namespace livs::cli
