#pragma once
// Rank agreement between two measurements of the same candidates, e.g. one
// objective at a cheap fidelity and at the full budget: does the cheap one
// order the candidates as the expensive one would? `livsearch status` reports
// it for each pair of consecutive fidelities of a run.
#include <vector>

namespace livs::search {

// Kendall's tau-b of the paired samples (x[i], y[i]):
//
//   (concordant - discordant) / sqrt((n0 - n1) * (n0 - n2))
//
// over all n0 = n(n-1)/2 pairs i < j, where a pair is concordant when x and y
// order it the same way, discordant when they order it oppositely, and counts
// as neither when it is tied in x or in y; n1 and n2 are the pairs tied in x
// and in y. This is the tie correction of Kendall (1945), and what
// scipy.stats.kendalltau computes by default: 1 when y orders the candidates
// exactly as x does, -1 when it reverses them, about 0 when unrelated.
//
// NaN when there are fewer than 2 observations, when x or y is constant (tau-b
// is then 0/0: nothing is ordered), or when any value is NaN. Infinities are
// ordered as usual. O(n^2), meant for a few hundred candidates.
// std::invalid_argument when x and y differ in length.
double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace livs::search
