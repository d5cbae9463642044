// bench/recall: in-context recall (MAD) and MQAR (Zoology) accuracy of the
// transformer preset against a gconv-only genome of the same width and
// depth, trained on the same examples with the same budget. Zoology reports
// that gated convolutions fall behind attention on recall; this shows the gap
// on our models.
//
//   recall --device cpu --d-model 64 --layers 2 --steps 1000 --lr 2e-3 --seq-len 64
#include <cstdio>
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "evaluator/backend_factory.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "genome/presets.hpp"
#include "proxies/task_training.hpp"

using namespace livs;

int main(int argc, char** argv) {
  cxxopts::Options options("recall", "recall accuracy: attention against gated convolutions");
  options.add_options()("device", "cpu, cuda or cuda:N", cxxopts::value<std::string>()->default_value("cpu"))(
      "d-model", "width", cxxopts::value<int>()->default_value("64"))(
      "layers", "layers (mixer + MLP each)", cxxopts::value<int>()->default_value("2"))(
      "steps", "training steps", cxxopts::value<int>()->default_value("1000"))(
      "batch", "examples per step", cxxopts::value<int>()->default_value("16"))(
      "lr", "peak learning rate", cxxopts::value<double>()->default_value("2e-3"))(
      "seq-len", "task sequence length", cxxopts::value<int>()->default_value("64"))(
      "seeds", "initialisation seeds", cxxopts::value<int>()->default_value("2"))("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  try {
    const int d = args["d-model"].as<int>(), layers = args["layers"].as<int>();
    auto backend = evaluator::make_backend(args["device"].as<std::string>());
    genome::Genome gconv = genome::preset("transformer", d, layers);
    for (std::size_t i = 0; i < gconv.slots.size(); i += 2)
      gconv.slots[i].ops[0] = genome::default_op(genome::LivClass::gconv, d);
    const std::vector<std::pair<std::string, genome::ModelSpec>> models = {
        {"transformer", genome::decode(genome::preset("transformer", d, layers))},
        {"gconv-only", genome::decode(gconv)}};
    evaluator::TrainSettings t;
    t.steps = args["steps"].as<int>();
    t.batch_size = args["batch"].as<int>();
    t.learning_rate = args["lr"].as<double>();
    t.warmup_steps = std::max(1, t.steps / 12);
    t.weight_decay = 0.0;
    std::printf("device %s, d_model %d, layers %d, steps %d, batch %d, lr %g\n", backend->name(), d, layers,
                t.steps, t.batch_size, t.learning_rate);
    for (const auto kind : {proxies::TaskKind::in_context_recall, proxies::TaskKind::mqar}) {
      auto task = proxies::default_task_settings(kind);
      task.seq_len = args["seq-len"].as<int>();
      task.train_examples = 4000;
      task.test_examples = 256;
      if (kind == proxies::TaskKind::mqar) task.vocab = 64;
      const auto data = proxies::generate_task(task, 5);
      for (const auto& [name, spec] : models) {
        for (int seed = 1; seed <= args["seeds"].as<int>(); ++seed) {
          const auto r = proxies::train_on_task(spec, t, data, uint64_t(seed), *backend);
          std::printf("%-18s %-12s seed %d accuracy %.3f final loss %.3f%s\n", proxies::to_string(kind),
                      name.c_str(), seed, r.accuracy, r.final_loss, r.ok ? "" : (" " + r.error).c_str());
          std::fflush(stdout);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
