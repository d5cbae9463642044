#include "evaluator/parameters.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/rng.hpp"

namespace livs::evaluator {

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

ParameterStore::Entry* ParameterStore::find(const std::string& full_name) {
  for (auto& e : entries_)
    if (e.name == full_name) return &e;
  return nullptr;
}

bool ParameterStore::contains(const std::string& full_name) const { return entry(full_name) != nullptr; }

const ParameterStore::Entry* ParameterStore::entry(const std::string& full_name) const {
  for (const auto& e : entries_)
    if (e.name == full_name) return &e;
  return nullptr;
}

std::string parameter_name(int slot, int op, const std::string& local) {
  return "slot" + std::to_string(slot) + ".op" + std::to_string(op) + "." + local;
}

std::string parameter_name(int slot, const std::string& local) {
  return "slot" + std::to_string(slot) + "." + local;
}

void ParameterStore::declare(const std::string& full_name, std::vector<int64_t> shape, Init init, bool decay,
                             Param* bind) {
  if (find(full_name)) throw std::invalid_argument("weight " + full_name + " declared twice");
  Entry e;
  e.name = full_name;
  e.numel = 1;
  for (auto d : shape) {
    if (d <= 0) throw std::invalid_argument("weight " + full_name + " has shape " + shape_to_string(shape));
    e.numel *= d;
  }
  e.shape = std::move(shape);
  e.init = init;
  e.decay = decay;
  e.users.push_back(bind);
  entries_.push_back(std::move(e));
  count_ += entries_.back().numel;
}

void ParameterStore::share(const std::string& full_name, const std::vector<int64_t>& shape, Param* bind) {
  Entry* e = find(full_name);
  if (!e) throw std::invalid_argument("shared weight " + full_name + " does not exist (yet)");
  if (e->shape != shape)
    throw std::invalid_argument("shared weight " + full_name + " has shape " + shape_to_string(e->shape) +
                                ", the sharing operator needs " + shape_to_string(shape));
  e->users.push_back(bind);
}

void ParameterStore::bind(float* values, float* grads, const void* values16) {
  int64_t offset = 0;
  for (bool decay : {true, false}) {
    ParamGroup& group = decay ? decayed_ : not_decayed_;
    group.offset = offset;
    for (auto& e : entries_) {
      if (e.decay != decay) continue;
      e.offset = offset;
      offset += e.numel;
      for (Param* p : e.users) {
        p->value = values + e.offset;
        p->grad = grads + e.offset;
        p->value16 = values16 ? static_cast<const uint16_t*>(values16) + e.offset : nullptr;
      }
    }
    group.count = offset - group.offset;
  }
  values_ = values;
}

namespace {

// float(rng.normal(0.0, stddev)) for count values, with the same bits: the
// uniforms are drawn in stream order a chunk at a time, and Box-Muller (log,
// sqrt and cos in double, ~30 ns a value: 1.5 s for the MFU shape's 51M
// weights on one core) runs over the chunk in parallel.
void fill_normal(Rng& rng, float* out, int64_t count, double stddev) {
  constexpr int64_t kChunk = int64_t(1) << 18;
  std::vector<Rng::NormalUniforms> uniforms(std::size_t(std::min(count, kChunk)));
  for (int64_t base = 0; base < count; base += kChunk) {
    const int64_t n = std::min(kChunk, count - base);
    for (int64_t i = 0; i < n; ++i) uniforms[std::size_t(i)] = rng.normal_uniforms();
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 4096), [&](const auto& r) {
      for (int64_t i = r.begin(); i != r.end(); ++i)
        out[base + i] = float(0.0 + stddev * Rng::box_muller(uniforms[std::size_t(i)]));
    });
  }
}

}  // namespace

void ParameterStore::initialize(Backend& backend, uint64_t seed, int slots) const {
  std::vector<float> host;
  for (const auto& e : entries_) {
    host.assign(static_cast<std::size_t>(e.numel), 0.0f);
    Rng rng(derive_seed(seed, e.name));
    const double out_scale = 1.0 / std::sqrt(2.0 * std::max(1, slots));
    const int64_t last_dim = e.shape.empty() ? 1 : e.shape.back();
    if (e.init == Init::normal || e.init == Init::out_projection) {
      fill_normal(rng, host.data(), e.numel, e.init == Init::normal ? 0.02 : 0.02 * out_scale);
      backend.copy_to_device(values_ + e.offset, host.data(), host.size() * sizeof(float));
      continue;
    }
    for (std::size_t index = 0; index < host.size(); ++index) {
      float& x = host[index];
      switch (e.init) {
        case Init::normal:
        case Init::out_projection:
          break;  // above
        case Init::ones:
          x = 1.0f;
          break;
        case Init::zeros:
          x = 0.0f;
          break;
        case Init::fan_in_uniform: {
          const double bound = 1.0 / std::sqrt(double(last_dim));
          x = float(rng.uniform(-bound, bound));
          break;
        }
        case Init::rglru_lambda: {  // exp(-8 softplus(lambda)) = q  <=>  lambda = log(expm1(-log(q) / 8))
          const double q = rng.uniform(0.9, 0.999);
          x = float(std::log(std::expm1(-std::log(q) / 8.0)));
          break;
        }
        case Init::ssm_a_log:
          x = float(std::log(double(int64_t(index) % last_dim + 1)));
          break;
        case Init::ssd_a_log:
          x = float(std::log(rng.uniform(1.0, 16.0)));
          break;
        case Init::ssm_dt_bias: {  // inverse softplus of dt = exp(U(log 1e-3, log 1e-1))
          const double dt = std::exp(rng.uniform(std::log(1e-3), std::log(1e-1)));
          x = float(dt + std::log(-std::expm1(-dt)));
          break;
        }
      }
    }
    backend.copy_to_device(values_ + e.offset, host.data(), host.size() * sizeof(float));
  }
}

}  // namespace livs::evaluator
