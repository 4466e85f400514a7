// The round loop (see federated_run.h). Per round t on every rank:
//   S(t) = sampler_sample(seed, t)                 same on every rank, no communication
//   plan = assignment_plan(S(t))                   balanced; owners keep their clients when possible
//   move adapters owner -> worker; train; move back
//   aggregate: mira_step (neighbourhood exchange + eq. (8)) | fedit_step (gather + ordered sum) | none
//   every eval_every rounds: owners evaluate their clients; rank 0 gathers and writes metrics
// A client's data cursor and dropout step are functions of how often it was sampled before t, so
// nothing but the adapter travels with it and a resumed run repeats the same numbers.
// The client states, their moves and the aggregation are the store's (store_, a ClientStateStore:
// fed/host_store.h on the CPU backend, fed/device_store.h on the CUDA backend); the loop below is
// the same for both. With the device store, device work is asynchronous, so the per-phase wall
// times charge it to the phase that waits for it (the next host synchronisation).
#include "fed/federated_run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "fed/assignment.h"
#include "fed/device_store.h"
#include "fed/host_store.h"
#include "fed/sampler.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/progress.h"
#include "runtime/signals.h"

namespace mira {
BatchView batch_view(const Batch& b) {
  BatchView v;
  v.B = b.B;
  v.T = b.T;
  v.inputs = b.inputs.data();
  v.targets = b.targets.data();
  v.loss_mask = b.loss_mask.data();
  return v;
}

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

nlohmann::json json_number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

FederatedRun::FederatedRun(const FederatedRunOptions& opts, MPI_Comm comm, Gpt2Model& model,
                           const FederatedDataset& data, const Graph& graph, int32_t pad_id)
    : opts_(opts), comm_(comm), model_(model), data_(data), graph_(graph), pad_id_(pad_id) {
  MIRA_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  MIRA_CHECK_MPI(MPI_Comm_size(comm_, &size_));
  MIRA_CHECK(opts_.clients == data_.num_clients() && opts_.clients == graph_.K,
             "K mismatch: options " + std::to_string(opts_.clients) + ", data " + std::to_string(data_.num_clients()) +
                 ", graph " + std::to_string(graph_.K));
  P_ = static_cast<size_t>(model_.adapter_size());
  S_ = opts_.keep_optimizer ? 3 * P_ : P_;
  owner_ = assignment_owners(opts_.clients, size_);
  std::vector<float> init(S_, 0.0f);    // adapter, then zero Adam moments when they are kept
  model_.initial_adapter(init.data());  // all clients start from the same adapter (MIRA.md, Setting)
  for (int k = 0; k < opts_.clients; ++k)
    if (owner_[k] == rank_) owned_ids_.push_back(k);
  const bool fedit = opts_.algorithm == Algorithm::FEDIT;
  // The CUDA backend: states in GPU memory, NCCL (or host-staged) exchange, aggregation kernels;
  // else host memory and MPI.
  store_ = opts_.placement.device >= 0
               ? device_store_create(comm_, opts_.placement, owner_, graph_, P_, S_, fedit, opts_.reproducible,
                                     init.data())
               : host_store_create(comm_, owner_, graph_, P_, S_, fedit, opts_.reproducible, init.data());
  for (int64_t t = 0; t < opts_.rounds; ++t)
    sample_history_.push_back(sampler_sample(opts_.seed, t, opts_.clients, opts_.sampled_per_round));
}

FederatedRun::~FederatedRun() = default;

std::vector<int> FederatedRun::clients_needed(const FederatedRunOptions& opts, int ranks, int rank) {
  std::vector<char> need(static_cast<size_t>(opts.clients), 0);
  for (int k = 0; k < opts.clients; ++k)
    if (assignment_owner(opts.clients, ranks, k) == rank) need[k] = 1;
  for (int64_t t = 0; t < opts.rounds; ++t) {
    Assignment plan = assignment_plan(sampler_sample(opts.seed, t, opts.clients, opts.sampled_per_round),
                                      opts.clients, ranks);
    for (int k : plan.by_rank[rank]) need[k] = 1;
  }
  std::vector<int> out;
  for (int k = 0; k < opts.clients; ++k)
    if (need[k]) out.push_back(k);
  return out;
}

int64_t FederatedRun::times_trained_before(int k, int64_t t) const {
  int64_t n = 0;
  for (int64_t s = 0; s < t; ++s)
    for (int c : sample_history_[s])
      if (c == k) ++n;
  return n;
}

int64_t FederatedRun::steps_per_round(int k) const {
  if (opts_.steps_mode) return opts_.local_steps;
  const int64_t n = data_.client(k).counts.train;
  return opts_.local_epochs * ((n + opts_.batch_size - 1) / opts_.batch_size);
}

int64_t FederatedRun::optimizer_step(int k, int64_t rounds) const {
  return opts_.keep_optimizer ? times_trained_before(k, rounds) * steps_per_round(k) : 0;
}

void FederatedRun::train_client(int k, int64_t t, double* loss_sum, double* tokens) {
  store_->load_adapter(model_, k);
  const auto& train = data_.train(k);
  ClientBatcher batcher(&train, opts_.seed, k, pad_id_);
  const int64_t before = times_trained_before(k, t);
  int64_t steps = 0;
  DataCursor cursor;
  if (opts_.steps_mode) {
    steps = opts_.local_steps;
    const int64_t consumed = before * steps * opts_.batch_size;  // examples used by earlier rounds
    cursor.epoch = consumed / batcher.size();
    cursor.position = consumed % batcher.size();
  } else {
    steps = opts_.local_epochs * batcher.batches_per_epoch(opts_.batch_size);
    cursor.epoch = before * opts_.local_epochs;
  }
  batcher.set_cursor(cursor);
  MIRA_CHECK(steps == steps_per_round(k), "steps per round of client " + std::to_string(k));
  if (opts_.keep_optimizer)
    store_->load_optimizer(model_, k, before * steps);
  else
    model_.reset_optimizer();  // authors' code: the optimiser is re-created every round
  for (int64_t i = 0; i < steps; ++i) {
    // The round will be abandoned (rolled back): stop at this step boundary, keep the collectives.
    if (signals_pending()) break;
    Batch b = opts_.steps_mode ? batcher.next_batch_full(opts_.batch_size, 0) : batcher.next_batch(opts_.batch_size, 0);
    const double n = static_cast<double>(b.tokens());
    const double loss = model_.train_step(batch_view(b), StepContext{k, before * steps + i});
    *loss_sum += loss * n;
    *tokens += n;
  }
  if (opts_.keep_optimizer) store_->save_optimizer(model_, k);
  store_->save_adapter(model_, k);
}

LossSum FederatedRun::evaluate_split(int client) {
  const auto& test = data_.test(client);
  LossSum total;  // batches in order: a fixed summation order
  const int64_t batches = batch_count(static_cast<int64_t>(test.size()), opts_.batch_size);
  for (int64_t i = 0; i < batches; ++i) {
    Batch b = batch_fixed(test, i, opts_.batch_size, 0, pad_id_);
    LossSum ls = model_.eval_loss(batch_view(b));
    total.sum += ls.sum;
    total.tokens += ls.tokens;
  }
  return total;
}

std::vector<double> FederatedRun::evaluate_owned() {
  std::vector<double> out;  // (owned) token-mean test loss per owned client, ascending id
  for (int k : owned_ids_) {
    if (signals_pending()) {  // the round will be abandoned: skip the work, keep the collectives
      out.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    if (opts_.algorithm == Algorithm::FEDIT)
      store_->load_global_adapter(model_);
    else
      store_->load_adapter(model_, k);
    const LossSum ls = evaluate_split(k);
    out.push_back(ls.tokens > 0 ? ls.sum / ls.tokens : std::numeric_limits<double>::quiet_NaN());
  }
  return out;
}

void FederatedRun::evaluate_global_matrix(RoundRecord& rec) {
  // Adapter k travels to every rank (one gather of P floats at a time: memory stays one adapter),
  // each rank evaluates it on the test splits of the clients it owns, and rank 0 gathers the
  // (loss sum, tokens) pairs by client. FedIT: every client holds the global adapter, so one
  // row is evaluated and repeated.
  const int K = opts_.clients;
  const bool fedit = opts_.algorithm == Algorithm::FEDIT;
  std::vector<double> sums, tokens;  // rank 0: (K, K)
  if (rank_ == 0) sums.assign(static_cast<size_t>(K) * K, 0.0), tokens.assign(static_cast<size_t>(K) * K, 0.0);
  for (int k = 0; k < (fedit ? 1 : K); ++k) {
    if (fedit)
      store_->load_global_adapter(model_);
    else
      store_->load_gathered_adapter(model_, k);  // collective
    std::vector<double> mine_sum, mine_tok;  // owned clients, ascending id
    for (const int l : owned_ids_) {
      if (signals_pending()) {  // the round will be abandoned: skip the work, keep the collectives
        mine_sum.push_back(std::numeric_limits<double>::quiet_NaN());
        mine_tok.push_back(0.0);
        continue;
      }
      const LossSum ls = evaluate_split(l);
      mine_sum.push_back(ls.sum);
      mine_tok.push_back(ls.tokens);
    }
    const std::vector<double> row_sum = gather_by_client(mine_sum), row_tok = gather_by_client(mine_tok);
    if (rank_ == 0)
      for (int r = fedit ? 0 : k; r < (fedit ? K : k + 1); ++r)
        for (int l = 0; l < K; ++l) sums[(size_t)r * K + l] = row_sum[l], tokens[(size_t)r * K + l] = row_tok[l];
  }
  if (rank_ != 0) return;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  rec.loss_matrix.assign(static_cast<size_t>(K) * K, nan);
  rec.client_global_loss.assign(K, nan);
  double mean = 0;
  int counted = 0;
  for (int k = 0; k < K; ++k) {
    double s = 0, n = 0;  // pooled over splits, in client order
    for (int l = 0; l < K; ++l) {
      const size_t i = (size_t)k * K + l;
      if (tokens[i] > 0) rec.loss_matrix[i] = sums[i] / tokens[i];
      s += sums[i];
      n += tokens[i];
    }
    if (n > 0 && std::isfinite(s)) {
      rec.client_global_loss[k] = s / n;
      mean += s / n;
      ++counted;
    }
  }
  rec.global_loss = counted > 0 ? mean / counted : nan;
}

std::vector<double> FederatedRun::gather_by_client(const std::vector<double>& mine) {
  // Owners hold contiguous blocks in rank order, so a Gatherv in rank order is client order.
  std::vector<int> counts(size_), displs(size_);
  for (int r = 0; r < size_; ++r) {
    int first = assignment_first_client(opts_.clients, size_, r);
    int next = r + 1 < size_ ? assignment_first_client(opts_.clients, size_, r + 1) : opts_.clients;
    counts[r] = next - first;
    displs[r] = first;
  }
  MIRA_CHECK(static_cast<int>(mine.size()) == counts[rank_], "owned values do not match the block distribution");
  std::vector<double> all(rank_ == 0 ? static_cast<size_t>(opts_.clients) : 0);
  MIRA_CHECK_MPI(MPI_Gatherv(mine.data(), counts[rank_], MPI_DOUBLE, all.data(), counts.data(), displs.data(),
                             MPI_DOUBLE, 0, comm_));
  return all;
}

RoundRecord FederatedRun::run_round(int64_t t) {
  const double start = now_seconds();
  RoundRecord rec;
  rec.round = t;
  rec.sampled = sample_history_[t];
  const GraphRoundEdges edges = graph_round_edges(graph_, rec.sampled);
  rec.active_edges = edges.active_edges;
  rec.isolated = edges.isolated;
  const Assignment plan = assignment_plan(rec.sampled, opts_.clients, size_);
  int64_t bytes = 0;

  // FedIT: every sampled client starts from the global adapter.
  if (opts_.algorithm == Algorithm::FEDIT) store_->copy_global_to_owned(rec.sampled);

  double phase[4] = {0, 0, 0, 0};  // this rank's seconds per phase (kRoundPhases)
  double mark = now_seconds();
  auto lap = [&](int p) {
    const double now = now_seconds();
    phase[p] += now - mark;
    mark = now;
  };
  bytes += store_->move(plan.to_workers);
  lap(1);

  // Local training of the clients assigned to this rank. Per client: loss sum and token count.
  std::vector<double> trained;  // (client, loss_sum, tokens) triplets
  for (int k : plan.by_rank[rank_]) {
    double loss_sum = 0, tokens = 0;
    train_client(k, t, &loss_sum, &tokens);
    trained.insert(trained.end(), {static_cast<double>(k), loss_sum, tokens});
  }
  lap(0);
  bytes += store_->move(plan.to_owners);
  store_->clear_visiting();

  // Aggregation (the states are back with their owners).
  if (opts_.algorithm == Algorithm::MIRA) {
    bytes += store_->mira_step(graph_, rec.sampled, opts_.neighbours, opts_.eta * opts_.lambda);
  } else if (opts_.algorithm == Algorithm::FEDIT) {
    std::vector<int64_t> sizes(opts_.clients);
    for (int k = 0; k < opts_.clients; ++k) sizes[k] = data_.client(k).counts.train;
    bytes += store_->fedit_step(rec.sampled, sizes);
    store_->copy_global_to_owned(owned_ids_);  // every client holds the global adapter
  }
  lap(1);

  // Training figures to rank 0 (gather the triplets; sum in client order).
  int n_mine = static_cast<int>(trained.size());
  std::vector<int> counts(size_), displs(size_);
  MIRA_CHECK_MPI(MPI_Gather(&n_mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm_));
  int total = 0;
  for (int r = 0; r < size_; ++r) displs[r] = total, total += counts[r];
  std::vector<double> all(rank_ == 0 ? static_cast<size_t>(total) : 0);
  MIRA_CHECK_MPI(MPI_Gatherv(trained.data(), n_mine, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE,
                             0, comm_));
  if (rank_ == 0) {
    rec.client_train_loss.assign(opts_.clients, std::numeric_limits<double>::quiet_NaN());
    std::vector<double> sum(opts_.clients, 0), tok(opts_.clients, 0);
    for (int i = 0; i + 2 < total; i += 3) {
      int k = static_cast<int>(all[i]);
      sum[k] = all[i + 1];
      tok[k] = all[i + 2];
    }
    double s = 0, n = 0;
    for (int k : rec.sampled) {  // client-id order
      rec.client_train_loss[k] = tok[k] > 0 ? sum[k] / tok[k] : std::numeric_limits<double>::quiet_NaN();
      s += sum[k];
      n += tok[k];
    }
    rec.train_loss = n > 0 ? s / n : std::numeric_limits<double>::quiet_NaN();
    rec.tokens = static_cast<int64_t>(n);
  }
  MIRA_CHECK_MPI(MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : &bytes, &bytes, 1, MPI_INT64_T, MPI_SUM, 0, comm_));
  rec.comm_bytes = bytes;

  // Evaluation: every client with its own adapter on its own test split.
  if ((t + 1) % opts_.eval_every == 0 || t + 1 == opts_.rounds) {
    rec.evaluated = true;
    rec.client_test_loss = gather_by_client(evaluate_owned());
    if (rank_ == 0) {
      double s = 0;
      int n = 0;
      for (double v : rec.client_test_loss)
        if (std::isfinite(v)) s += v, ++n;
      rec.test_loss = n > 0 ? s / n : std::numeric_limits<double>::quiet_NaN();
    }
    if (opts_.global_matrix) evaluate_global_matrix(rec);
  }
  lap(2);
  reduce_phases(rec, phase, 0, 3);
  rec.seconds = now_seconds() - start;
  return rec;
}

void FederatedRun::reduce_phases(RoundRecord& rec, const double* mine, int first, int count) {
  // Timings only (never results): a floating-point reduction is fine here.
  MIRA_CHECK_MPI(MPI_Reduce(mine + first, rec.phase_min + first, count, MPI_DOUBLE, MPI_MIN, 0, comm_));
  MIRA_CHECK_MPI(MPI_Reduce(mine + first, rec.phase_max + first, count, MPI_DOUBLE, MPI_MAX, 0, comm_));
}

void FederatedRun::write_csv() {
  if (rank_ != 0 || opts_.csv_path.empty()) return;
  const std::string tmp = opts_.csv_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "round,client,task,family,sampled,train_loss,test_loss\n";
    out.precision(17);
    for (const RoundRecord& r : records_) {
      std::vector<char> sampled(static_cast<size_t>(opts_.clients), 0);
      for (int k : r.sampled) sampled[k] = 1;
      for (int k = 0; k < opts_.clients; ++k) {
        out << r.round + 1 << ',' << k << ',' << (k < (int)opts_.client_task.size() ? opts_.client_task[k] : "")
            << ',' << (k < (int)opts_.client_family.size() ? opts_.client_family[k] : "") << ','
            << int(sampled[k]) << ',';
        if (k < (int)r.client_train_loss.size() && std::isfinite(r.client_train_loss[k])) out << r.client_train_loss[k];
        out << ',';
        if (r.evaluated && k < (int)r.client_test_loss.size() && std::isfinite(r.client_test_loss[k]))
          out << r.client_test_loss[k];
        out << '\n';
      }
    }
    if (!out) throw InternalError("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), opts_.csv_path.c_str()) != 0)
    throw InternalError("cannot rename '" + tmp + "' to '" + opts_.csv_path + "'");
}

void FederatedRun::write_metrics(const RoundRecord& rec) {
  if (rank_ != 0 || opts_.metrics_path.empty()) return;
  nlohmann::json j;
  j["type"] = "round";
  j["round"] = rec.round + 1;
  j["sampled"] = rec.sampled;
  j["active_edges"] = rec.active_edges;
  j["isolated"] = rec.isolated;
  j["train_loss"] = json_number_or_null(rec.train_loss);
  nlohmann::json ctl = nlohmann::json::array();
  for (double v : rec.client_train_loss) ctl.push_back(json_number_or_null(v));
  j["client_train_loss"] = ctl;
  if (rec.evaluated) {
    j["test_loss"] = json_number_or_null(rec.test_loss);
    nlohmann::json cl = nlohmann::json::array();
    for (double v : rec.client_test_loss) cl.push_back(json_number_or_null(v));
    j["client_test_loss"] = cl;
    if (!rec.loss_matrix.empty()) {
      const size_t K = rec.client_global_loss.size();
      j["global_loss"] = json_number_or_null(rec.global_loss);
      nlohmann::json g = nlohmann::json::array(), m = nlohmann::json::array();
      for (double v : rec.client_global_loss) g.push_back(json_number_or_null(v));
      for (size_t k = 0; k < K; ++k) {
        nlohmann::json row = nlohmann::json::array();
        for (size_t l = 0; l < K; ++l) row.push_back(json_number_or_null(rec.loss_matrix[k * K + l]));
        m.push_back(row);
      }
      j["client_global_loss"] = g;
      j["loss_matrix"] = m;
    }
  }
  j["tokens"] = rec.tokens;
  j["seconds"] = rec.seconds;
  j["comm_bytes"] = rec.comm_bytes;
  // The paper's accounting: each sampled client uploads and downloads its fp32 adapter once.
  j["paper_comm_bytes_per_client"] = 2 * 4 * static_cast<int64_t>(P_);
  nlohmann::json phases;
  for (int p = 0; p < 4; ++p) phases[kRoundPhases[p]] = {rec.phase_min[p], rec.phase_max[p]};
  j["phase_seconds_min_max"] = phases;
  std::ofstream out(opts_.metrics_path, std::ios::app);
  out << j.dump() << "\n";
  if (!out) throw InternalError("cannot append to metrics file '" + opts_.metrics_path + "'");
}

void FederatedRun::restore(int64_t rounds_done, std::map<int, std::vector<float>> owned, std::vector<float> global,
                           std::vector<RoundRecord> records) {
  MIRA_CHECK(rounds_done >= 0 && rounds_done <= opts_.rounds, "rounds_done " + std::to_string(rounds_done));
  for (const auto& [k, a] : owned)
    MIRA_CHECK(owner_[k] == rank_ && a.size() == S_, "restored state of client " + std::to_string(k));
  MIRA_CHECK(owned.size() == owned_ids_.size(), "restored adapters do not cover the owned clients");
  if (opts_.algorithm == Algorithm::FEDIT) MIRA_CHECK(global.size() == P_, "FedIT global adapter");
  store_->restore(std::move(owned), std::move(global));  // device store: uploaded, the host copies go away
  records_ = std::move(records);
  rounds_done_ = rounds_done;
}

bool FederatedRun::agree_stop() {
  int local = signals_pending(), any = 0;
  MIRA_CHECK_MPI(MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, comm_));
  return any != 0;
}

RunResult FederatedRun::run(const RoundHook& after_round) {
  RunResult result;
  Progress progress("round", opts_.rounds);
  double tokens = 0, seconds = 0;
  for (int64_t t = rounds_done_; t < opts_.rounds; ++t) {
    // Snapshot of the state after round t-1: restored if a signal abandons round t (device-resident
    // states: a device-to-device copy, no host round trip).
    store_->snapshot();
    RoundRecord rec = run_round(t);
    if (agree_stop()) {
      store_->rollback();
      result.stopped = true;
      break;
    }
    graph_log_round(graph_, rec.sampled, t + 1);
    tokens += static_cast<double>(rec.tokens);
    seconds += rec.seconds;
    char detail[256];
    if (rec.evaluated)
      std::snprintf(detail, sizeof detail, "train loss %.4f | test loss %.4f | %.0f tok/s | exchange %.0f ms, %.1f KiB",
                    rec.train_loss, rec.test_loss, seconds > 0 ? tokens / seconds : 0.0, 1e3 * rec.phase_max[1],
                    rec.comm_bytes / 1024.0);
    else
      std::snprintf(detail, sizeof detail, "train loss %.4f | %.0f tok/s | exchange %.0f ms, %.1f KiB", rec.train_loss,
                    seconds > 0 ? tokens / seconds : 0.0, 1e3 * rec.phase_max[1], rec.comm_bytes / 1024.0);
    records_.push_back(rec);
    rounds_done_ = t + 1;
    double ck[4] = {0, 0, 0, now_seconds()};
    if (after_round) after_round(rounds_done_);  // checkpoints
    ck[3] = now_seconds() - ck[3];
    reduce_phases(records_.back(), ck, 3, 1);
    write_metrics(records_.back());
    write_csv();
    progress.update(t + 1, detail, rec.evaluated);
    if (opts_.wait_for_signal_after_round == rounds_done_) {
      log_info("waiting for a stop signal after round %lld (run.wait_for_signal_after_round)", (long long)rounds_done_);
      while (!agree_stop()) usleep(100 * 1000);  // 0.1 s between polls: a test-only path
      result.stopped = true;
      break;
    }
  }
  result.rounds_done = rounds_done_;
  result.signal = signals_pending();
  return result;
}

}  // namespace mira
