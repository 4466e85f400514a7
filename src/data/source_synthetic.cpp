// Synthetic suite as a dataset source: client k gets task k mod 20 and examples_per_client
// examples, split 80/20 (see synthetic.h).
#include "data/source.h"
#include "data/synthetic.h"

namespace mira {

SourceData source_load_synthetic(const DataOptions& opts, const std::set<int>& needed) {
  SourceData d;
  for (int f = 0; f < SYNTH_NUM_FAMILIES; ++f) d.family_names.push_back(synth_family_name(f));
  const int k_total = opts.num_clients > 0 ? opts.num_clients : SYNTH_NUM_TASKS;
  d.clients.resize(k_total);
  for (int k = 0; k < k_total; ++k) {
    SourceClient& c = d.clients[k];
    const SynthTask t = synth_task(synth_client_task(k));
    c.task = t.name;
    c.family = t.family;
    c.n_train = source_train_count(opts.examples_per_client, opts.train_fraction);
    c.n_test = opts.examples_per_client - c.n_train;
    if (!needed.count(k)) continue;
    std::vector<TextExample> all;
    for (int i = 0; i < opts.examples_per_client; ++i) all.push_back(synth_example(opts.seed, k, i));
    source_split(std::move(all), opts.seed, k, opts.train_fraction, &c.train_text, &c.test_text);
    c.loaded = true;
  }
  return d;
}

}  // namespace mira
