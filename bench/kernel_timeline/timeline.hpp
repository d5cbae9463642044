#pragma once
// What the device ran, as intervals, and the figures that say how a set of
// candidates shared it: how much of the wall time any kernel was running,
// how many ran at once, and which kernels took longer when candidates shared
// the device than when one had it alone. The intervals come from
// cupti_tracer.hpp on a GPU; this part is plain arithmetic, tested on the
// CPU (tests/bench/).
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace livs::bench {

// One kernel (or copy, or fill) as the device ran it: [start, end) in
// nanoseconds of one clock, on one stream.
struct DeviceSpan {
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  uint32_t stream = 0;
  uint32_t name = 0;  // index into Timeline::names
};

class Timeline {
 public:
  // Adds a span; its name is stored once however often it recurs. A span
  // that ends before it starts is kept with length 0.
  void add(uint64_t start_ns, uint64_t end_ns, uint32_t stream, const std::string& name);
  const std::vector<DeviceSpan>& spans() const { return spans_; }
  const std::string& name(uint32_t index) const { return names_[index]; }
  bool empty() const { return spans_.empty(); }
  void clear();

 private:
  std::vector<DeviceSpan> spans_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> index_;
};

struct TimelineSummary {
  std::size_t spans = 0;
  std::size_t streams = 0;              // streams that ran at least one span
  double window_seconds = 0.0;          // the wall time the figures are over
  double busy_seconds = 0.0;            // time at least one span was running (the union)
  double span_seconds = 0.0;            // the spans' lengths added up
  double busiest_stream_seconds = 0.0;  // the largest sum of one stream's spans

  // Share of the window the device ran anything.
  double busy_fraction() const { return window_seconds > 0 ? busy_seconds / window_seconds : 0.0; }
  // Spans running at once, on average, while any was running (1: never overlapped).
  double mean_overlap() const { return busy_seconds > 0 ? span_seconds / busy_seconds : 0.0; }
};

// The spans that overlap [from_ns, to_ns), cut to it.
Timeline clipped(const Timeline& timeline, uint64_t from_ns, uint64_t to_ns);

// The figures over a window of window_seconds of wall time (the caller's
// clock; 0: from the first span's start to the last span's end).
TimelineSummary summarize(const Timeline& timeline, double window_seconds = 0.0);

// The time spans of one name took in a timeline, and in another one
// (baseline: the same work with the device to itself).
struct NameComparison {
  std::string name;
  std::size_t count = 0, baseline_count = 0;
  double seconds = 0.0, baseline_seconds = 0.0;
  double added_seconds() const { return seconds - baseline_seconds; }
};

// Every name of either timeline, the largest added time first (ties: by name);
// with an empty baseline, each name's count and time, the largest first.
std::vector<NameComparison> compare_by_name(const Timeline& timeline, const Timeline& baseline);

// A kernel's symbol as a table shows it: demangled, without its return type,
// namespaces and parameter list ("matmul_kernel<64, 64, true>"), at most 100
// characters; a name that is not mangled is kept as it is.
std::string short_kernel_name(const std::string& symbol);

}  // namespace livs::bench
