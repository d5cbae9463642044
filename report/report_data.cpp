#include "report/report_data.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <set>

#include "search/run_front.hpp"

namespace livs::report {

namespace {

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? std::string("(no error text recorded)") : line;
}

// Genome rows, each read once however many times a section asks for it.
class GenomeCache {
 public:
  explicit GenomeCache(const db::Queries& db) : db_(db) {}
  const db::GenomeRecord* find(const std::string& hash) {
    auto it = cache_.find(hash);
    if (it == cache_.end()) it = cache_.emplace(hash, db_.genome(hash)).first;
    return it->second ? &*it->second : nullptr;
  }

 private:
  const db::Queries& db_;
  std::map<std::string, std::optional<db::GenomeRecord>> cache_;
};

void add_to(Composition& composition, const Json& genome) {
  auto slots = slot_classes(genome);
  if (slots.empty()) return;
  ++composition.genomes;
  if (composition.by_slot.size() < slots.size()) composition.by_slot.resize(slots.size());
  for (std::size_t s = 0; s < slots.size(); ++s)
    for (const auto& cls : slots[s]) {
      ++composition.by_class[cls];
      ++composition.by_slot[s][cls];
    }
}

std::vector<FrontRow::Ancestor> ancestry(const db::Queries& db, int64_t run_id, const std::string& hash,
                                         GenomeCache& genomes, std::string& own_operator) {
  std::vector<FrontRow::Ancestor> out;
  std::set<std::string> seen{hash};
  std::deque<std::pair<std::string, int>> queue{{hash, 0}};
  while (!queue.empty() && out.size() < kMaxAncestors) {
    auto [child, depth] = queue.front();
    queue.pop_front();
    auto lineage = db.lineage(run_id, child);
    if (!lineage) continue;
    if (depth == 0) own_operator = lineage->operator_name;
    for (const auto& parent : lineage->parent_hashes) {
      if (!seen.insert(parent).second || out.size() >= kMaxAncestors) continue;
      FrontRow::Ancestor a;
      a.hash = parent;
      a.child_hash = child;
      a.depth = depth + 1;
      auto parent_lineage = db.lineage(run_id, parent);
      a.operator_name = parent_lineage ? parent_lineage->operator_name : "";
      a.generation = parent_lineage ? parent_lineage->generation : 0;
      if (const auto* g = genomes.find(parent)) a.summary = g->summary;
      out.push_back(a);
      queue.emplace_back(parent, depth + 1);
    }
  }
  return out;
}

}  // namespace

double mean_of(const CandidatePoint& point, const std::string& metric) {
  auto it = point.metrics.find(metric);
  return it == point.metrics.end() || it->second.n == 0 ? std::nan("") : it->second.mean;
}

std::string unit_of(const ReportData& data, const std::string& metric) {
  auto it = data.units.find(metric);
  return it == data.units.end() ? std::string() : it->second;
}

std::vector<std::vector<std::string>> slot_classes(const Json& genome) {
  std::vector<std::vector<std::string>> out;
  if (!genome.is_object() || !genome.contains("slots") || !genome["slots"].is_array()) return out;
  for (const auto& slot : genome["slots"]) {
    std::vector<std::string> classes;
    auto add = [&](const Json& op) {
      if (op.is_object() && op.contains("class") && op["class"].is_string())
        classes.push_back(op["class"].get<std::string>());
    };
    if (slot.is_object() && slot.contains("ops") && slot["ops"].is_array())
      for (const auto& op : slot["ops"]) add(op);
    else
      add(slot);
    out.push_back(std::move(classes));
  }
  return out;
}

ReportData gather_report_data(const db::Queries& db, const std::string& run_name) {
  ReportData d;
  d.run = db.resolve_run(run_name);
  d.db_path = db.path();
  d.tool_version = std::string(db::kToolVersion);
  const auto goals = search::run_goals(d.run, db.path());
  d.objectives = goals.objectives;
  d.constraints = goals.constraints;
  d.rungs = goals.rungs;
  d.counts = db.evaluation_counts(d.run.id);
  d.latest_generation = db.latest_generation(d.run.id);
  const auto evaluations = db.evaluations(d.run.id);
  GenomeCache genomes(db);

  // The final stage records its evaluations one generation after the last
  // recorded one.
  std::set<std::string> finalists;
  if (d.latest_generation)
    for (const auto& e : evaluations)
      if (e.generation > *d.latest_generation) finalists.insert(e.genome_hash);

  const auto front = search::compute_front(db, d.run.name, "", false);
  d.front_fidelity = front.fidelity;
  std::set<std::string> front_hashes;
  for (const auto& m : front.members) front_hashes.insert(m.candidate.hash);
  const auto labels = db.genome_labels(d.run.id);

  std::map<std::string, std::size_t> front_point;  // hash -> index in points
  for (const auto& f : front.fidelities) {
    const bool top = f.fidelity == front.fidelity;
    for (const auto& c : search::load_candidates(db, d.run, f.fidelity).candidates) {
      CandidatePoint p;
      p.hash = c.hash;
      p.label = c.label;
      if (const auto* g = genomes.find(c.hash)) p.summary = g->summary;
      p.fidelity = f.fidelity;
      p.generation = c.evaluations.front().generation;
      for (const auto& e : c.evaluations) p.generation = std::min(p.generation, e.generation);
      p.metrics = c.metrics;
      for (const auto& [name, unit] : c.units)
        if (d.units[name].empty()) d.units[name] = unit;
      p.violation = search::constraint_violation(c.means(), d.constraints);
      p.on_front = top && front_hashes.count(c.hash) > 0;
      p.finalist = finalists.count(c.hash) > 0;
      if (top) front_point[c.hash] = d.points.size();
      d.points.push_back(std::move(p));
    }
  }
  for (const auto& m : front.members) {
    auto at = front_point.find(m.candidate.hash);
    if (at == front_point.end()) continue;  // cannot happen within one snapshot; never crash on it
    FrontRow row;
    row.point = at->second;
    if (const auto* g = genomes.find(m.candidate.hash)) row.genome = g->genome;
    row.ancestors = ancestry(db, d.run.id, m.candidate.hash, genomes, row.operator_name);
    d.front.push_back(std::move(row));
  }

  // Hypervolume against generation and against the evaluation time spent so far.
  std::map<int, double> seconds_by_generation;
  std::set<std::string> run_genomes;
  std::map<std::string, std::size_t> failure_index;
  for (const auto& e : evaluations) {
    if (e.status == db::EvaluationStatus::ok || e.status == db::EvaluationStatus::failed) {
      seconds_by_generation[e.generation] += e.wall_seconds;
      d.evaluation_seconds += e.wall_seconds;
      if (e.finished_at > d.last_finished_at) d.last_finished_at = e.finished_at;
      run_genomes.insert(e.genome_hash);
    }
    if (d.first_started_at.empty() || e.started_at < d.first_started_at) d.first_started_at = e.started_at;
    if (!e.device.empty() && std::find(d.devices.begin(), d.devices.end(), e.device) == d.devices.end())
      d.devices.push_back(e.device);
    if (e.status != db::EvaluationStatus::failed) continue;
    ++d.failed_evaluations;
    const std::string reason = first_line(e.error);
    auto [it, added] = failure_index.emplace(reason, d.failures.size());
    if (added) d.failures.push_back({reason, 0, {}, {}});
    auto& group = d.failures[it->second];
    ++group.count;
    if (group.hashes.size() < 5 &&
        std::find(group.hashes.begin(), group.hashes.end(), e.genome_hash) == group.hashes.end())
      group.hashes.push_back(e.genome_hash);
    if (std::find(group.fidelities.begin(), group.fidelities.end(), e.fidelity) == group.fidelities.end())
      group.fidelities.push_back(e.fidelity);
  }
  for (auto& group : d.failures) std::sort(group.fidelities.begin(), group.fidelities.end());
  std::stable_sort(d.failures.begin(), d.failures.end(),
                   [](const FailureGroup& a, const FailureGroup& b) { return a.count > b.count; });
  for (const auto& h : db.hypervolume_history(d.run.id)) {
    double seconds = 0.0;
    for (const auto& [generation, s] : seconds_by_generation)
      if (generation <= h.generation) seconds += s;
    d.hypervolume.push_back({h.generation, h.hypervolume, seconds});
  }

  if (goals.rungs.size() > 1) d.rung_counts = search::rung_counts(d.run, goals, evaluations);
  d.rank_stability = search::rank_stability(db, d.run, front.fidelities, d.objectives);

  for (const auto& hash : run_genomes)
    if (const auto* g = genomes.find(hash)) add_to(d.run_composition, g->genome);
  for (const auto& row : d.front) add_to(d.front_composition, row.genome);
  return d;
}

}  // namespace livs::report
