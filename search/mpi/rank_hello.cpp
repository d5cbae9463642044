#include "search/mpi/rank_hello.hpp"

#include <filesystem>

#include "common/sha256.hpp"

namespace livs::search::mpi {

Json to_json(const RankHello& hello) {
  return Json{{"rank", hello.rank},   {"host", hello.host}, {"device", hello.device},
              {"lanes", hello.lanes}, {"data", hello.data}, {"error", hello.error}};
}

RankHello rank_hello_from_json(const Json& json) {
  RankHello hello;
  hello.rank = json.at("rank").get<int>();
  hello.host = json.at("host").get<std::string>();
  hello.device = json.at("device").get<std::string>();
  hello.lanes = json.at("lanes").get<int>();
  hello.data = json.at("data");
  hello.error = json.at("error").get<std::string>();
  return hello;
}

Json data_fingerprint(const std::vector<std::string>& paths) {
  Json files = Json::array();
  for (const auto& path : paths) {
    std::error_code error;
    const auto bytes = std::filesystem::file_size(path, error);
    const auto digest = sha256_file_hex(path);
    files.push_back({{"path", path},
                     {"bytes", error ? Json(nullptr) : Json(bytes)},
                     {"sha256", digest ? Json(*digest) : Json(nullptr)}});
  }
  return files;
}

std::string fingerprint_difference(const Json& ours, const Json& theirs) {
  if (ours.size() != theirs.size())
    return std::to_string(theirs.size()) + " data files where rank 0 has " + std::to_string(ours.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const Json& a = ours[i];
    const Json& b = theirs[i];
    const std::string path = b.at("path").get<std::string>();
    if (a.at("path") != b.at("path"))
      return "data file " + path + " where rank 0 has " + a.at("path").get<std::string>();
    if (b.at("sha256").is_null()) return "cannot read data file " + path;
    if (a.at("bytes") != b.at("bytes"))
      return "data file " + path + " has " + b.at("bytes").dump() + " bytes where rank 0's has " +
             a.at("bytes").dump();
    if (a.at("sha256") != b.at("sha256"))
      return "data file " + path + " differs from rank 0's (sha256 " + b.at("sha256").get<std::string>() +
             ", rank 0's " + a.at("sha256").get<std::string>() + ")";
  }
  return "";
}

std::string lane_place(const RankHello& hello) {
  return hello.device + " on " + hello.host + " (rank " + std::to_string(hello.rank) + ")";
}

}  // namespace livs::search::mpi
