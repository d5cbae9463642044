// bench/latency: decode_ms (and prefill_ms) of the transformer preset and a
// gconv-only genome at several context lengths on one device, with the
// protocol of proxies/latency.hpp (warm-up, median of repeats, spread). The
// transformer's decode reads a KV cache as long as the context, so its time
// should grow with the context; the gconv model's state is (k-1) x width
// whatever the context, so its time should stay flat. Run it twice in separate
// processes to see how well decode_ms repeats.
//
//   latency --device cuda --d-model 512 --layers 8 --contexts 512,2048,8192,32768
#include "proxies/latency.hpp"

#include <cstdio>
#include <cxxopts.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "evaluator/backend_factory.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "genome/presets.hpp"

using namespace livs;

namespace {

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) out.push_back(std::stoll(item));
  return out;
}

// Every mixer a gconv (kernel 3), every other slot a SwiGLU, like the presets' layout.
genome::Genome gconv_only(int d_model, int layers) {
  genome::Genome g = genome::preset("transformer", d_model, layers);
  for (std::size_t i = 0; i < g.slots.size(); i += 2)
    g.slots[i].ops[0] = genome::default_op(genome::LivClass::gconv, d_model);
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("latency",
                           "decode_ms of the transformer preset and a gconv-only genome vs context");
  options.add_options()("device", "cpu, cuda or cuda:N", cxxopts::value<std::string>()->default_value("cpu"))(
      "d-model", "width", cxxopts::value<int>()->default_value("256"))(
      "layers", "layers (mixer + MLP each)", cxxopts::value<int>()->default_value("4"))(
      "contexts", "comma-separated context lengths",
      cxxopts::value<std::string>()->default_value("256,1024,4096,16384"))(
      "batch", "sequences decoded at once", cxxopts::value<int>()->default_value("1"))(
      "prompt", "prefill tokens", cxxopts::value<int>()->default_value("128"))(
      "warmup", "untimed runs", cxxopts::value<int>()->default_value("5"))(
      "repeats", "timed runs", cxxopts::value<int>()->default_value("50"))("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  try {
    const int d = args["d-model"].as<int>(), layers = args["layers"].as<int>();
    auto backend = evaluator::make_backend(args["device"].as<std::string>());
    const std::vector<std::pair<std::string, genome::ModelSpec>> models = {
        {"transformer", genome::decode(genome::preset("transformer", d, layers))},
        {"gconv-only", genome::decode(gconv_only(d, layers))}};
    std::printf("device %s, d_model %d, layers %d, batch %d, prompt %d, warmup %d, repeats %d\n",
                backend->name(), d, layers, args["batch"].as<int>(), args["prompt"].as<int>(),
                args["warmup"].as<int>(), args["repeats"].as<int>());
    std::printf("%-12s %9s %12s %10s %12s %10s %14s\n", "model", "context", "decode_ms", "spread",
                "prefill_ms", "spread", "cache_bytes");
    for (const auto& [name, spec] : models) {
      for (const int64_t context : parse_list(args["contexts"].as<std::string>())) {
        proxies::LatencySettings s;
        s.batch = args["batch"].as<int>();
        s.prompt = args["prompt"].as<int>();
        s.context = context;
        s.warmup = args["warmup"].as<int>();
        s.repeats = args["repeats"].as<int>();
        const auto m = proxies::measure_inference(spec, *backend, s, 1, true);
        std::printf("%-12s %9lld %12.4f %10.3f %12.4f %10.3f %14lld\n", name.c_str(), (long long)context,
                    m.decode.median_ms, m.decode.spread, m.prefill.median_ms, m.prefill.spread,
                    (long long)(2 * spec.decode_state_elements(context)));
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
