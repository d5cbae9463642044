#pragma once
// `livsearch search`, taken apart for the ways it runs: in one process on
// one or several devices (cmd_search.cpp), or as one rank of an MPI job
// (search_over_mpi.cpp). Preparing reads and checks everything a rank needs
// (config, data, the evaluate function) without touching the database;
// running opens the database and drives the search over the lanes given.
#include <string>
#include <vector>

#include "cli/config.hpp"
#include "proxies/evaluate.hpp"
#include "search/lanes.hpp"

namespace livs::cli {

struct SearchArguments {
  std::string config_path;
  std::string db_path;
  bool resume = false;
  std::string devices;  // --devices / --device; "": the config's device
  int workers = 1;      // evaluations in flight per device (per rank with --mpi)
};

struct PreparedSearch {
  Config config;
  proxies::EvalSettings eval_settings;
  std::string requested_devices;  // the flag's, else the config's (cli/device_list.hpp's form)
  std::string devices_origin;     // which of the two, for errors: "--devices" or "CONFIG: /device"
  search::EvaluateFunction evaluate;
};

// Throws InputError on a bad config or data file: before any work starts.
PreparedSearch prepare_search(const SearchArguments& arguments);

// Every data file a candidate reads (training, then validation).
std::vector<std::string> data_files(const proxies::EvalSettings& settings);

// Opens the database and runs (or resumes) the search on `lanes`, `device`
// being what the run records as where it ran; returns the exit status.
int run_prepared_search(const PreparedSearch& prepared, const SearchArguments& arguments,
                        std::vector<search::Lane> lanes, const std::string& device);

// The search as several ranks of an MPI job (search/mpi/); every rank calls
// it with the same arguments. Rank 0 searches and writes the database.
int run_search_over_mpi(const SearchArguments& arguments);

}  // namespace livs::cli
