// Runs one row of tests/bad_inputs/cases.txt through the real livsearch
// binary, as a user meets the mistake:
//   bad_input_case LIVSEARCH SOURCE_DIR CASES_FILE CASE_NAME
// A row is `name | setup | command | expected`: the setup builds the broken
// files in a fresh folder (the command's working directory, `{dir}` in the
// row), the command runs, and the case passes when
//   - the exit status is 2,
//   - stderr is exactly one line, "error: ..." holding every `expected` part
//     (`&&`-separated; they name the file and what was expected),
//   - stdout is empty, and
//   - nothing in the folder was created, changed or removed (no database
//     written, no lock file left behind; the one exception is SQLite's
//     -shm/-wal reader files beside an unchanged database).
// Exit 0 passes, 1 fails (with the reason on stderr), 77 skips (ctest
// SKIP_RETURN_CODE), e.g. a permission case when not even `nobody` exists.
//
// Setup directives, separated by ` + ` (never `;`: CMake reads the rows as a
// list) (paths relative to the folder):
//   shard F [tokens=N] [value=X] [magic=M] [version=V] [count=C] [cut=B] [extra=B] [big=I:X]
//   text F [bytes=N]             N bytes of text ('a'..'z')
//   write F TEXT                 TEXT verbatim (\n for a newline)
//   copy SOURCE F                a file of the repository
//   mkdir F                      a folder
//   socket F                     a Unix socket (not a regular file)
//   chmod F MODE                 octal mode (enforced by running as `nobody` when root)
//   config F [/json/pointer=JSON]...  tests/cli/tiny_search.json with the data
//                                path made absolute, then each value set
//   db F [run=NAME]              an empty livsearch database, or one with a run
//   sql F SQL                    runs SQL on the SQLite file F
//   cut F BYTES                  truncates F to BYTES
//   lock F                       holds F's writer lock while the command runs
//   nobody                       run the command as user nobody when root
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Row {
  std::string name, setup, command;
  std::vector<std::string> expected;
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

std::vector<std::string> split(const std::string& s, const std::string& separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t at; (at = s.find(separator, start)) != std::string::npos; start = at + separator.size())
    parts.push_back(trim(s.substr(start, at - start)));
  parts.push_back(trim(s.substr(start)));
  return parts;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
    s.replace(at, from.size(), to);
  return s;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

[[noreturn]] void fail(const std::string& why) {
  std::cerr << "FAILED: " << why << "\n";
  std::exit(1);
}

// key=value words after the directive's file name.
std::map<std::string, std::string> options_of(const std::vector<std::string>& words, std::size_t from) {
  std::map<std::string, std::string> options;
  for (std::size_t i = from; i < words.size(); ++i) {
    const auto eq = words[i].find('=');
    if (eq == std::string::npos) throw std::runtime_error("setup option without '=': " + words[i]);
    options[words[i].substr(0, eq)] = words[i].substr(eq + 1);
  }
  return options;
}

long long number(const std::map<std::string, std::string>& options, const std::string& key,
                 long long fallback) {
  const auto it = options.find(key);
  return it == options.end() ? fallback : std::stoll(it->second);
}

void put_le32(std::string& bytes, std::size_t offset, long long value) {
  const auto v = static_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<char>(v >> (8 * i));
}

// An llm.c shard written byte by byte, with every header field adjustable.
std::string shard(const std::map<std::string, std::string>& o) {
  const long long tokens = number(o, "tokens", 400);
  std::string bytes(1024 + 2 * tokens, '\0');
  put_le32(bytes, 0, number(o, "magic", 20240520));
  put_le32(bytes, 4, number(o, "version", 1));
  put_le32(bytes, 8, number(o, "count", tokens));
  const long long value = number(o, "value", -1);
  for (long long i = 0; i < tokens; ++i) {
    const long long id = value >= 0 ? value : (i * 7) % 200;
    bytes[1024 + 2 * i] = static_cast<char>(id & 0xff);
    bytes[1024 + 2 * i + 1] = static_cast<char>(id >> 8);
  }
  if (const auto it = o.find("big"); it != o.end()) {  // big=INDEX:ID
    const auto colon = it->second.find(':');
    const long long index = std::stoll(it->second.substr(0, colon)),
                    id = std::stoll(it->second.substr(colon + 1));
    bytes[1024 + 2 * index] = static_cast<char>(id & 0xff);
    bytes[1024 + 2 * index + 1] = static_cast<char>(id >> 8);
  }
  bytes.resize(bytes.size() - number(o, "cut", 0));
  bytes.append(number(o, "extra", 0), '\x01');
  return bytes;
}

void run_sql(const fs::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite open " + file.string());
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  const std::string error = message ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error("sql on " + file.string() + ": " + error);
}

struct Context {
  std::string livsearch, source;
  fs::path dir;
  bool as_nobody = false;
  std::vector<int> held_locks;
};

void run_livsearch_setup(Context& c, const std::string& args) {
  const std::string command =
      "cd '" + c.dir.string() + "' && '" + c.livsearch + "' " + args + " >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("setup command failed: livsearch " + args);
}

void apply_directive(Context& c, const std::string& directive) {
  std::vector<std::string> words;
  {
    std::istringstream in(directive);
    for (std::string w; in >> w;) words.push_back(w);
  }
  if (words.empty()) return;
  const std::string& kind = words[0];
  if (kind == "nobody") {
    c.as_nobody = true;
    return;
  }
  if (words.size() < 2) throw std::runtime_error("setup directive without a file: " + directive);
  const fs::path file = c.dir / words[1];
  if (kind == "shard") {
    write_file(file, shard(options_of(words, 2)));
  } else if (kind == "text") {
    const long long n = number(options_of(words, 2), "bytes", 1000);
    std::string text;
    for (long long i = 0; i < n; ++i) text += static_cast<char>('a' + i % 26);
    write_file(file, text);
  } else if (kind == "write") {
    const auto at = directive.find(words[1]) + words[1].size();
    write_file(file, replace_all(trim(directive.substr(at)), "\\n", "\n"));
  } else if (kind == "copy") {
    fs::copy_file(fs::path(c.source) / words[1], c.dir / words.at(2));
  } else if (kind == "mkdir") {
    fs::create_directories(file);
  } else if (kind == "socket") {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", file.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("cannot bind a socket at " + file.string());
    ::close(fd);
  } else if (kind == "chmod") {
    fs::permissions(file, static_cast<fs::perms>(std::stoi(words.at(2), nullptr, 8)));
  } else if (kind == "config") {
    nlohmann::ordered_json config =
        nlohmann::ordered_json::parse(read_file(fs::path(c.source) / "tests/cli/tiny_search.json"));
    config["data"]["path"] = (fs::path(c.source) / "data/kjv.txt").string();
    config["search"] = {{"algorithm", "random"}, {"population", 2}, {"generations", 1}};
    config["training"]["steps"] = 2;
    for (std::size_t i = 2; i < words.size(); ++i) {
      const auto eq = words[i].find('=');
      const nlohmann::ordered_json::json_pointer pointer(words[i].substr(0, eq));
      const std::string value = replace_all(words[i].substr(eq + 1), "{dir}", c.dir.string());
      if (value == "DELETE") {
        config[pointer.parent_pointer()].erase(pointer.back());
      } else {
        config[pointer] = nlohmann::ordered_json::parse(value);
      }
    }
    write_file(file, config.dump(2) + "\n");
  } else if (kind == "db") {
    const auto o = options_of(words, 2);
    // A real database written by the real binary (a search of two
    // candidates, two steps each), or an SQLite file with no livsearch schema.
    if (o.count("run")) {
      apply_directive(c, "config " + words[1] + ".config.json /name=\"" + o.at("run") + "\"");
      run_livsearch_setup(c, "search '" + words[1] + ".config.json' --db '" + words[1] + "'");
      fs::remove(c.dir / (words[1] + ".config.json"));
    } else {
      run_sql(file, "PRAGMA user_version = 0; CREATE TABLE placeholder(x); DROP TABLE placeholder;");
    }
  } else if (kind == "sql") {
    const auto at = directive.find(words[1]) + words[1].size();
    run_sql(file, trim(directive.substr(at)));
  } else if (kind == "cut") {
    fs::resize_file(file, std::stoull(words.at(2)));
  } else if (kind == "lock") {
    const std::string lock_path = file.string() + "-writer.lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) throw std::runtime_error("cannot lock " + lock_path);
    c.held_locks.push_back(fd);
  } else {
    throw std::runtime_error("unknown setup directive: " + kind);
  }
}

// Every file under the folder with its content (or "<dir>"), to compare
// before and after the command.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const auto relative = fs::relative(entry.path(), dir).string();
    if (entry.is_directory()) {
      files[relative] = "<dir>";
    } else if (entry.is_regular_file()) {
      const auto status = entry.status();
      if ((status.permissions() & fs::perms::owner_read) == fs::perms::none) {
        files[relative] = "<unreadable " + std::to_string(entry.file_size()) + ">";
      } else {
        files[relative] = read_file(entry.path());
      }
    } else {
      files[relative] = "<special>";
    }
  }
  return files;
}

// A reader of a WAL-mode database leaves SQLite's -shm and -wal files next
// to it (they hold no data of the database's own); allowed only beside a
// database file that existed before and is byte-for-byte unchanged.
bool sqlite_reader_file(const std::string& name, const std::map<std::string, std::string>& before,
                        const std::map<std::string, std::string>& after) {
  for (const std::string suffix : {"-shm", "-wal"}) {
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string database = name.substr(0, name.size() - suffix.size());
    if (before.count(database) && after.count(database) && before.at(database) == after.at(database))
      return true;
  }
  return false;
}

Row find_row(const std::string& cases_file, const std::string& name) {
  std::ifstream in(cases_file);
  for (std::string line; std::getline(in, line);) {
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    const auto fields = split(line, " | ");
    if (fields.size() != 4) fail(cases_file + ": a row needs 4 fields separated by ' | ': " + line);
    if (fields[0] != name) continue;
    return {fields[0], fields[1], fields[2], split(fields[3], "&&")};
  }
  fail("no case named '" + name + "' in " + cases_file);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: bad_input_case LIVSEARCH SOURCE_DIR CASES_FILE CASE_NAME\n";
    return 2;
  }
  Context c{argv[1], argv[2], {}, false, {}};
  const Row row = find_row(argv[3], argv[4]);
  c.dir = fs::temp_directory_path() / ("livsearch_bad_input_" + std::to_string(::getpid()));
  fs::remove_all(c.dir);
  fs::create_directories(c.dir);
  // `nobody` must be able to enter the folder and read what is not forbidden.
  fs::permissions(c.dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  const fs::path capture = c.dir.string() + ".capture";
  fs::create_directories(capture);
  int result = 0;
  try {
    for (const auto& directive : split(row.setup, " + "))
      apply_directive(c, replace_all(directive, "{dir}", c.dir.string()));
    std::string prefix;
    if (c.as_nobody && ::geteuid() == 0) {
      if (std::system("setpriv --reuid=65534 --regid=65534 --clear-groups true") != 0) {
        std::cerr << "SKIPPED: cannot run as nobody (setpriv) to enforce file permissions as root\n";
        fs::remove_all(c.dir);
        fs::remove_all(capture);
        return 77;
      }
      prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    }
    const auto before = snapshot(c.dir);
    const std::string command = "cd '" + c.dir.string() + "' && " + prefix + "'" + c.livsearch + "' " +
                                replace_all(row.command, "{dir}", c.dir.string()) + " >'" +
                                (capture / "out").string() + "' 2>'" + (capture / "err").string() + "'";
    const int status = std::system(command.c_str());
    const std::string out = read_file(capture / "out"), err = read_file(capture / "err");
    const auto after = snapshot(c.dir);
    std::cout << "$ livsearch " << row.command << "\n" << err;
    std::vector<std::string> problems;
    if (!WIFEXITED(status))
      problems.push_back("the process did not exit normally (a crash?)");
    else if (WEXITSTATUS(status) != 2)
      problems.push_back("exit status " + std::to_string(WEXITSTATUS(status)) + ", expected 2");
    if (!out.empty()) problems.push_back("stdout is not empty: " + out.substr(0, 200));
    const bool one_line = !err.empty() && err.find('\n') == err.size() - 1;
    if (!one_line) problems.push_back("stderr is not exactly one line");
    if (err.rfind("error: ", 0) != 0) problems.push_back("stderr does not start with 'error: '");
    for (const auto& part : row.expected) {
      const std::string wanted = replace_all(part, "{dir}", c.dir.string());
      if (err.find(wanted) == std::string::npos) problems.push_back("stderr lacks \"" + wanted + "\"");
    }
    for (const auto& [name, content] : after) {
      if (!before.count(name)) {
        if (!sqlite_reader_file(name, before, after)) problems.push_back("the command created " + name);
      } else if (before.at(name) != content) {
        problems.push_back("the command changed " + name);
      }
    }
    for (const auto& [name, content] : before)
      if (!after.count(name)) problems.push_back("the command removed " + name);
    for (const auto& p : problems) std::cerr << "FAILED: " << p << "\n";
    result = problems.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "FAILED in setup: " << e.what() << "\n";
    result = 1;
  }
  for (int fd : c.held_locks) ::close(fd);
  fs::remove_all(c.dir);
  fs::remove_all(capture);
  return result;
}
