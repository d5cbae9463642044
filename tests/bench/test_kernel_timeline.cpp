// bench/kernel_timeline: the arithmetic that turns what the device ran into
// "busy", "at once" and "added by sharing" (the CUPTI part needs a GPU).
#include <doctest/doctest.h>

#include "bench/kernel_timeline/cupti_tracer.hpp"
#include "bench/kernel_timeline/timeline.hpp"

using namespace livs::bench;

TEST_CASE("timeline: busy time is the union of the spans, overlap the sum over the union") {
  Timeline t;
  t.add(20, 30, 1, "c");  // out of order on purpose
  t.add(0, 10, 1, "a");
  t.add(5, 15, 2, "b");
  const TimelineSummary s = summarize(t);
  CHECK(s.spans == 3);
  CHECK(s.streams == 2);
  CHECK(s.busy_seconds == doctest::Approx(25e-9));
  CHECK(s.span_seconds == doctest::Approx(30e-9));
  CHECK(s.busiest_stream_seconds == doctest::Approx(20e-9));
  CHECK(s.window_seconds == doctest::Approx(30e-9));  // first start to last end
  CHECK(s.mean_overlap() == doctest::Approx(1.2));
  CHECK(s.busy_fraction() == doctest::Approx(25.0 / 30.0));
  // A window of the caller's: the device idle outside the spans counts.
  CHECK(summarize(t, 60e-9).busy_fraction() == doctest::Approx(25.0 / 60.0));
}

TEST_CASE("timeline: spans inside a longer one add no busy time, touching ones join") {
  Timeline t;
  t.add(0, 100, 1, "long");
  t.add(10, 20, 2, "inner");
  t.add(30, 40, 3, "inner");
  t.add(100, 110, 1, "next");      // starts where the long one ends
  t.add(200, 190, 1, "reversed");  // kept with length 0
  const TimelineSummary s = summarize(t);
  CHECK(s.busy_seconds == doctest::Approx(110e-9));
  CHECK(s.span_seconds == doctest::Approx(130e-9));
  CHECK(s.window_seconds == doctest::Approx(200e-9));
}

TEST_CASE("timeline: an empty timeline reports zeros over the caller's window") {
  const TimelineSummary s = summarize(Timeline{}, 2.0);
  CHECK(s.spans == 0);
  CHECK(s.window_seconds == 2.0);
  CHECK(s.busy_fraction() == 0.0);
  CHECK(s.mean_overlap() == 0.0);
}

TEST_CASE("timeline: names are kept once and compared between two timelines by added time") {
  Timeline shared, alone;
  shared.add(0, 30, 1, "gemm");
  shared.add(40, 70, 2, "gemm");
  shared.add(0, 5, 1, "fill");
  shared.add(0, 4, 1, "only shared");
  alone.add(0, 10, 1, "gemm");
  alone.add(20, 30, 1, "gemm");
  alone.add(0, 5, 1, "fill");
  alone.add(0, 8, 1, "only alone");
  CHECK(shared.spans().size() == 4);
  CHECK(shared.name(shared.spans()[0].name) == "gemm");
  CHECK(shared.spans()[1].name == shared.spans()[0].name);

  const auto rows = compare_by_name(shared, alone);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].name == "gemm");
  CHECK(rows[0].count == 2);
  CHECK(rows[0].baseline_count == 2);
  CHECK(rows[0].added_seconds() == doctest::Approx(40e-9));
  CHECK(rows[1].name == "only shared");
  CHECK(rows[2].name == "fill");
  CHECK(rows[2].added_seconds() == doctest::Approx(0.0));
  CHECK(rows[3].name == "only alone");
  CHECK(rows[3].count == 0);
  CHECK(rows[3].added_seconds() == doctest::Approx(-8e-9));
}

TEST_CASE("timeline: clear forgets spans and names") {
  Timeline t;
  t.add(0, 1, 1, "a");
  t.clear();
  CHECK(t.empty());
  t.add(0, 1, 1, "b");
  CHECK(t.name(t.spans()[0].name) == "b");
}

TEST_CASE("timeline: kernel symbols are shown without return type, namespaces and parameters") {
  CHECK(short_kernel_name("_ZN4livs4cuda12_GLOBAL__N_113matmul_kernelILi64ELb1EEEvPKfPfi") ==
        "matmul_kernel<64, true>");
  CHECK(short_kernel_name("_ZN4livs9evaluator4cuda11fill_kernelEPffl") == "fill_kernel");
  // Not mangled (a C symbol, as cuBLAS's own kernels often are): kept.
  CHECK(short_kernel_name("sm90_xmma_gemm_bf16bf16_bf16f32") == "sm90_xmma_gemm_bf16bf16_bf16f32");
  CHECK(short_kernel_name(std::string(150, 'k')).size() == 100);
}

TEST_CASE("timeline: the tracer either starts or says why not") {
  std::string why_not;
  auto tracer = KernelTracer::start(why_not);
  if (tracer) {
    // A GPU build on a machine with libcupti: a second one is refused.
    std::string second;
    CHECK_FALSE(KernelTracer::start(second));
    CHECK(second.find("already running") != std::string::npos);
    const auto trace = tracer->take();
    CHECK(trace.dropped == 0);
  } else {
    CHECK_FALSE(why_not.empty());
  }
}

TEST_CASE("timeline: clipping keeps what overlaps the window, cut to it") {
  Timeline t;
  t.add(0, 10, 1, "before");
  t.add(5, 25, 1, "across the start");
  t.add(30, 40, 2, "inside");
  t.add(45, 60, 1, "across the end");
  t.add(50, 70, 1, "after");
  const Timeline c = clipped(t, 10, 50);
  REQUIRE(c.spans().size() == 3);
  CHECK(c.name(c.spans()[0].name) == "across the start");
  CHECK(c.spans()[0].start_ns == 10);
  CHECK(c.spans()[0].end_ns == 25);
  CHECK(c.spans()[1].stream == 2);
  CHECK(c.spans()[2].start_ns == 45);
  CHECK(c.spans()[2].end_ns == 50);
  // Busy within the window: 15 + 10 + 5 of its 40.
  CHECK(summarize(c, 40e-9).busy_fraction() == doctest::Approx(30.0 / 40.0));
}
