// bench/recall: in-context recall (MAD) and MQAR (Zoology) accuracy of the
// transformer preset against a gconv-only genome of the same width and
// depth, trained on the same examples with the same budget. Zoology reports
// that gated convolutions fall behind attention on recall; this shows the gap
// on our models. With --tasks all it trains on each of MAD's six tasks and
// MQAR and prints, beside each accuracy, the majority-answer baseline of the
// held-out set (the accuracy of always giving the most frequent answer), so
// "above chance" can be read off.
//
//   recall --device cpu --d-model 64 --layers 2 --steps 1000 --lr 2e-3 --seq-len 64
//   recall --device cuda --tasks all --models transformer --seq-len 0   (each task's own length)
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "evaluator/backend_factory.hpp"
#include "genome/decode.hpp"
#include "genome/genome.hpp"
#include "genome/presets.hpp"
#include "proxies/task_training.hpp"

using namespace livs;

namespace {

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

// The share of held-out answers equal to the most frequent one.
double majority_baseline(const proxies::TaskData& data) {
  std::map<int32_t, int64_t> counts;
  int64_t scored = 0;
  for (const auto& example : data.test)
    for (std::size_t t = 0; t < example.targets.size(); ++t)
      if (example.scored[t]) {
        ++counts[example.targets[t]];
        ++scored;
      }
  int64_t most = 0;
  for (const auto& [token, count] : counts) most = std::max(most, count);
  return scored > 0 ? double(most) / double(scored) : 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("recall", "recall accuracy: attention against gated convolutions");
  options.add_options()("device", "cpu, cuda or cuda:N", cxxopts::value<std::string>()->default_value("cpu"))(
      "d-model", "width", cxxopts::value<int>()->default_value("64"))(
      "layers", "layers (mixer + MLP each)", cxxopts::value<int>()->default_value("2"))(
      "steps", "training steps", cxxopts::value<int>()->default_value("1000"))(
      "batch", "examples per step", cxxopts::value<int>()->default_value("16"))(
      "lr", "peak learning rate", cxxopts::value<double>()->default_value("2e-3"))(
      "seq-len", "task sequence length (0: each task's default)", cxxopts::value<int>()->default_value("64"))(
      "tasks", "comma-separated task names, or all",
      cxxopts::value<std::string>()->default_value("in_context_recall,mqar"))(
      "unscored", "what unscored positions train on: copy, ignore (default: each task's)",
      cxxopts::value<std::string>()->default_value(""))(
      "models", "comma-separated: transformer, gconv-only",
      cxxopts::value<std::string>()->default_value("transformer,gconv-only"))(
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
    std::vector<std::pair<std::string, genome::ModelSpec>> models;
    for (const auto& name : split_list(args["models"].as<std::string>())) {
      if (name == "transformer")
        models.emplace_back(name, genome::decode(genome::preset("transformer", d, layers)));
      else if (name == "gconv-only")
        models.emplace_back(name, genome::decode(gconv));
      else
        throw std::invalid_argument("--models: unknown model '" + name + "' (transformer, gconv-only)");
    }
    std::vector<proxies::TaskKind> tasks;
    const std::string task_list = args["tasks"].as<std::string>();
    if (task_list == "all") tasks = proxies::all_tasks();
    for (const auto& name : task_list == "all" ? std::vector<std::string>{} : split_list(task_list)) {
      proxies::TaskKind kind;
      if (!proxies::task_from_string(name, kind))
        throw std::invalid_argument("--tasks: unknown task '" + name + "'");
      tasks.push_back(kind);
    }
    evaluator::TrainSettings t;
    t.steps = args["steps"].as<int>();
    t.batch_size = args["batch"].as<int>();
    t.learning_rate = args["lr"].as<double>();
    t.warmup_steps = std::max(1, t.steps / 12);
    t.weight_decay = 0.0;
    std::printf("device %s, d_model %d, layers %d, steps %d, batch %d, lr %g\n", backend->name(), d, layers,
                t.steps, t.batch_size, t.learning_rate);
    for (const auto kind : tasks) {
      auto task = proxies::default_task_settings(kind);
      if (args["seq-len"].as<int>() > 0) task.seq_len = args["seq-len"].as<int>();
      task.train_examples = std::min(task.train_examples, 4000);
      task.test_examples = std::min(task.test_examples, 256);
      if (kind == proxies::TaskKind::mqar) task.vocab = 64;
      const std::string unscored = args["unscored"].as<std::string>();
      if (!unscored.empty() && !proxies::unscored_targets_from_string(unscored, task.unscored_targets))
        throw std::invalid_argument("--unscored: expected copy or ignore, got '" + unscored + "'");
      const auto data = proxies::generate_task(task, 5);
      std::printf("%-18s majority-answer baseline %.3f (vocab %d, seq_len %d, unscored targets %s)\n",
                  proxies::to_string(kind), majority_baseline(data), task.vocab, task.seq_len,
                  proxies::to_string(task.unscored_targets));
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
