#include "bench/kernel_timeline/timeline.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <map>

namespace livs::bench {

void Timeline::add(uint64_t start_ns, uint64_t end_ns, uint32_t stream, const std::string& name) {
  auto [it, inserted] = index_.try_emplace(name, static_cast<uint32_t>(names_.size()));
  if (inserted) names_.push_back(name);
  spans_.push_back({start_ns, std::max(start_ns, end_ns), stream, it->second});
}

void Timeline::clear() {
  spans_.clear();
  names_.clear();
  index_.clear();
}

Timeline clipped(const Timeline& timeline, uint64_t from_ns, uint64_t to_ns) {
  Timeline out;
  for (const DeviceSpan& d : timeline.spans())
    if (d.end_ns > from_ns && d.start_ns < to_ns)
      out.add(std::max(d.start_ns, from_ns), std::min(d.end_ns, to_ns), d.stream, timeline.name(d.name));
  return out;
}

TimelineSummary summarize(const Timeline& timeline, double window_seconds) {
  TimelineSummary s;
  std::vector<DeviceSpan> spans = timeline.spans();
  s.spans = spans.size();
  if (spans.empty()) {
    s.window_seconds = window_seconds;
    return s;
  }
  std::sort(spans.begin(), spans.end(),
            [](const DeviceSpan& a, const DeviceSpan& b) { return a.start_ns < b.start_ns; });
  // The union: walk the spans by start, extending the current run while the
  // next span starts before it ends.
  uint64_t busy_ns = 0, span_ns = 0, last_end = 0;
  uint64_t run_start = spans.front().start_ns, run_end = spans.front().end_ns;
  std::map<uint32_t, uint64_t> per_stream;
  for (const DeviceSpan& d : spans) {
    span_ns += d.end_ns - d.start_ns;
    per_stream[d.stream] += d.end_ns - d.start_ns;
    last_end = std::max(last_end, d.end_ns);
    if (d.start_ns > run_end) {
      busy_ns += run_end - run_start;
      run_start = d.start_ns;
      run_end = d.end_ns;
    } else {
      run_end = std::max(run_end, d.end_ns);
    }
  }
  busy_ns += run_end - run_start;
  s.streams = per_stream.size();
  s.busy_seconds = double(busy_ns) * 1e-9;
  s.span_seconds = double(span_ns) * 1e-9;
  for (const auto& [stream, ns] : per_stream)
    s.busiest_stream_seconds = std::max(s.busiest_stream_seconds, double(ns) * 1e-9);
  s.window_seconds = window_seconds > 0.0 ? window_seconds : double(last_end - spans.front().start_ns) * 1e-9;
  return s;
}

std::vector<NameComparison> compare_by_name(const Timeline& timeline, const Timeline& baseline) {
  std::map<std::string, NameComparison> by_name;
  for (const DeviceSpan& d : timeline.spans()) {
    NameComparison& c = by_name[timeline.name(d.name)];
    ++c.count;
    c.seconds += double(d.end_ns - d.start_ns) * 1e-9;
  }
  for (const DeviceSpan& d : baseline.spans()) {
    NameComparison& c = by_name[baseline.name(d.name)];
    ++c.baseline_count;
    c.baseline_seconds += double(d.end_ns - d.start_ns) * 1e-9;
  }
  std::vector<NameComparison> out;
  out.reserve(by_name.size());
  for (auto& [name, c] : by_name) {
    c.name = name;
    out.push_back(std::move(c));
  }
  std::stable_sort(out.begin(), out.end(), [](const NameComparison& a, const NameComparison& b) {
    return a.added_seconds() > b.added_seconds();
  });
  return out;
}

std::string short_kernel_name(const std::string& symbol) {
  int status = -1;
  char* demangled = abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : symbol;
  std::free(demangled);
  const std::string anonymous = "(anonymous namespace)::";
  for (std::size_t at; (at = name.find(anonymous)) != std::string::npos;) name.erase(at, anonymous.size());
  // Outside template brackets: a space ends the return type, "::" a
  // namespace, '(' starts the parameter list.
  std::size_t begin = 0, end = name.size();
  int depth = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '<') ++depth;
    if (c == '>') --depth;
    if (depth != 0) continue;
    if (c == '(') {
      end = i;
      break;
    }
    if (c == ' ') begin = i + 1;
    if (c == ':' && i + 1 < name.size() && name[i + 1] == ':') begin = i + 2;
  }
  name = name.substr(begin, end - begin);
  if (name.size() > 100) name = name.substr(0, 97) + "...";
  return name;
}

}  // namespace livs::bench
