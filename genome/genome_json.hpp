#pragma once
// The canonical JSON form of a genome, reading genome files with every
// problem reported by JSON pointer, the content hash and the summary line.
//
// Canonical form (what to_canonical_json writes, after canonicalize()):
//   {"d_model": D, "vocab": V, "slots": [slot, ...]}
//   striped slot = an op object; fusion slot = {"fusion": "sum"|"mean"|"gate", "ops": [op, op]}
//   op = {"class": ..., the class's knobs in a fixed order, "differential" (token
//         mixers only), "share_featurizer", "share_features" (sa and linattn only)}
//   a sharing reference is null or {"slot": s, "op": o}.
// Every knob of the op's class is written (defaults included), no knob of
// another class is. When reading, knobs may be omitted (defaults of
// default_op; an omitted sa kv_heads equals heads) and a reference may also
// be a bare slot number (op 0).
#include <string>

#include "common/json_reader.hpp"
#include "genome/genome.hpp"

namespace livs::genome {

Json op_to_json(const OpGene& op);  // as written inside the canonical form (op not canonicalized)
Json to_canonical_json(const Genome& g);
std::string to_canonical_string(const Genome& g);  // compact dump of to_canonical_json

// Checks everything and throws livs::InputError with one InputProblem per
// problem found, each with its JSON pointer. Returns a canonical genome.
Genome genome_from_json(const Json& doc, const std::string& file = "<genome>");
Genome genome_from_file(const std::string& path);

// SHA-256 hex of the canonical compact dump: equal for genomes that decode to
// the same model, stable across runs, processes and machines.
std::string genome_hash(const Genome& g);

// One line: "d128 L8 | sa(4,kv4) swiglu gconv3 swiglu ...".
std::string summary(const Genome& g);

}  // namespace livs::genome
