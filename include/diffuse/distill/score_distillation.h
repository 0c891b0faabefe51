#pragma once
// Score distillation: a trained diffusion model as the prior that steers a differentiable
// generator g(ψ) (image_generator.h). In σ-space (x = x0 + σ n, D(x; σ) ≈ E[x0 | x]) the
// noise prediction is ε̂(x; σ) = (x − D(x; σ))/σ, and each method is a choice of what ε̂ is
// compared with at x = g + σ n:
//   sds  Score Distillation Sampling (Poole et al. 2022, eq. 3):
//          ∇ψ = w(t) (ε̂(x; y) − ε) ∂g/∂ψ = w(t) (g − D(x; y))/σ ∂g/∂ψ, ε ~ N(0, I);
//   vsd  Variational Score Distillation (Wang et al. 2023, eq. 9): ε replaced by the
//        prediction of a second score model ε_φ fitted online to the particles' renders
//        (eq. 10, by denoising score matching): ∇ψ = w(t) (D_φ(x) − D(x; y))/σ ∂g/∂ψ;
//   sdi  Score Distillation via Inversion (Lukoianov et al. 2024, §4): ε replaced by the
//        noise κ that DDIM inversion of the current render reaches at t + τ, τ ~ U(0, τ_max),
//        κ = (x_{t+τ} − g)/σ_{t+τ}, and t annealed linearly from t_max to t_min.
// A time t ∈ (0, 1) names a noise level through the model's schedule (sigma_at_time).
// w(t) is DreamFusion's σ_t² of the VP process, σ²/(1 + σ²), or 1.
#include <torch/torch.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/core/option_schema.h"
#include "diffuse/distill/image_generator.h"
#include "diffuse/precond/precond.h"
#include "diffuse/schedule/noise_schedule.h"

namespace diffuse {

enum class ScoreDistillationMethod { sds, vsd, sdi };
inline constexpr std::array<EnumName<ScoreDistillationMethod>, 3> kScoreDistillationMethodNames{{
    {"sds", ScoreDistillationMethod::sds},
    {"vsd", ScoreDistillationMethod::vsd},
    {"sdi", ScoreDistillationMethod::sdi},
}};

enum class DistillWeighting { vp_variance, uniform };
inline constexpr std::array<EnumName<DistillWeighting>, 2> kDistillWeightingNames{{
    {"vp_variance", DistillWeighting::vp_variance},
    {"uniform", DistillWeighting::uniform},
}};

// VSD's particle score model ε_φ: LoRA adapters on the checkpoint's own network (Hu et al.
// 2022; what ProlificDreamer uses), or a full trainable copy of it. Both start equal to the
// prior, so the first VSD gradients are 0 and grow as φ learns the particles.
enum class ParticleScoreNetwork { lora, copy };
inline constexpr std::array<EnumName<ParticleScoreNetwork>, 2> kParticleScoreNetworkNames{{
    {"lora", ParticleScoreNetwork::lora},
    {"copy", ParticleScoreNetwork::copy},
}};

struct VsdOptions {
  ParticleScoreNetwork network = ParticleScoreNetwork::lora;
  int64_t lora_rank = 4;  // rank of each adapter (network lora)
  double lr = 1e-3;       // Adam learning rate of φ
  int updates = 1;        // φ updates per particle update (the update ratio)
};

struct SdiOptions {
  int inversion_steps = 0;     // Euler (= DDIM) steps of each inversion; 0: int(10 t), at least 1
  double tau_max = 0.0;        // the inversion runs to t + τ, τ ~ U(0, tau_max)
  double inversion_cfg = 1.0;  // guidance weight while inverting (negative allowed)
};

struct ScoreDistillationOptions {
  ScoreDistillationMethod method = ScoreDistillationMethod::sds;
  GeneratorOptions generator;
  int64_t particles = 4;
  int steps = 500;
  double lr = 0.01;        // Adam learning rate of the generator
  uint64_t seed = 0;       // particle k starts from seed + k; the run's noise from seed
  int64_t class_label = -1;  // key "class"; -1: no label (the null class, or an unconditional model)
  std::vector<int> classes;  // instead of class: labels cycled over the particles

  double cfg = 1.0;        // guidance weight of the prior
  double t_min = 0.02, t_max = 0.98;
  DistillWeighting weighting = DistillWeighting::vp_variance;
  VsdOptions vsd;          // key "vsd", read only for method vsd
  SdiOptions sdi;          // key "sdi", read only for method sdi
  int log_every = 25;      // a metrics.jsonl line and a progress line
  int snapshot_every = 50; // a row of the progress grid
  int save_every = 100;    // the resumable state
};

// The keys of a score-distillation task (`diffuse distill --config`, README.md "Config
// reference"); parse → emit → parse is the identity.
const OptionSchema<ScoreDistillationOptions>& score_distillation_schema();
ScoreDistillationOptions parse_score_distillation(ConfigNode& root);
// The label of particle k: classes[k mod |classes|], else class_label (-1: none).
int64_t particle_label(const ScoreDistillationOptions& options, int64_t k);
YAML::Node emit_score_distillation(const ScoreDistillationOptions& options);
// Loads and parses `path`, applying `key.path=value` overrides first (as --set does).
ScoreDistillationOptions load_score_distillation(const std::string& path,
                                                 const std::vector<std::string>& overrides = {});

// σ at time t ∈ [0, 1] of a schedule: VP grids at t·(T−1) (t_from_sigma's inverse); flow
// σ = shift · t/(1 − t) (the interpolant's time); EDM and VE log-linear between σ_min and
// σ_max. Clamped to the schedule's σ range.
double sigma_at_time(const NoiseSchedule& schedule, double t);

// The prior D(x; σ) with a guidance weight (1: the plain denoiser). SDI inverts with its own.
using GuidedDenoiserFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma, double cfg)>;

// VSD's ε_φ, as a denoiser fitted to the particles' renders.
class ParticleScore {
 public:
  virtual ~ParticleScore() = default;
  virtual torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma) = 0;
  // One fitting step on renders [n, C, H, W] (detached) at noise levels sigma [n] with noise
  // [n, C, H, W]; returns its loss.
  virtual double fit(const torch::Tensor& renders, const torch::Tensor& sigma, const torch::Tensor& noise) = 0;
  // The fitted state, for resuming a run.
  virtual void save(torch::serialize::OutputArchive& archive) = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
};

// ε_φ from a second instance of the prior's network (loaded by the caller): LoRA adapters of
// rank `options.lora_rank` on each of its Linear and Conv2d layers, or all its weights; fitted
// by ε-matching, ‖(x0 − D_φ(x0 + σ n; σ))/σ‖² (ProlificDreamer eq. 10), with Adam. The
// adapters' random halves are drawn from `seed`.
std::shared_ptr<ParticleScore> make_network_particle_score(Precond network, torch::Tensor labels,
                                                           const VsdOptions& options, uint64_t seed);

struct DistillStepReport {
  int step = 0;            // steps done after this one
  double t = 0.0;          // mean time of the step
  double loss = 0.0;       // ½ mean ‖grad‖²: the surrogate loss whose gradient is the update
  double particle_score_loss = 0.0;  // VSD: φ's loss
};

// The optimisation itself, one step at a time, so that callers (diffuse distill, tests)
// choose what to log and write between steps.
class ScoreDistiller {
 public:
  // `particle_score` is required for vsd and ignored otherwise.
  ScoreDistiller(ScoreDistillationOptions options, GuidedDenoiserFn prior, NoiseSchedule schedule,
                 std::shared_ptr<ImageGenerator> generator, std::shared_ptr<ParticleScore> particle_score,
                 torch::Device device);

  DistillStepReport step();
  int steps_done() const { return steps_done_; }
  // Renders without gradients, [n, C, H, W] on the CPU (float32).
  torch::Tensor render(const torch::Tensor& azimuths = {});
  ImageGenerator& generator() { return *generator_; }

  // Generator, optimiser, RNG, step (and φ): resuming continues bit for bit on the CPU.
  void save(const std::string& path);
  void load(const std::string& path);

 private:
  torch::Tensor draw_times();
  torch::Tensor uniform_times();  // [n] t ~ U(t_min, t_max), float64
  torch::Tensor sdi_noise(const torch::Tensor& render, double t);

  ScoreDistillationOptions options_;
  GuidedDenoiserFn prior_;
  NoiseSchedule schedule_;
  std::shared_ptr<ImageGenerator> generator_;
  std::shared_ptr<ParticleScore> particle_score_;
  torch::Device device_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  torch::Generator gen_;
  int steps_done_ = 0;
};

// Saturation and sharpness of images [N, C, H, W]: mean |x| (SDS's over-saturation pushes it
// up) and the variance of the 3 × 3 Laplacian (blur pulls it down), per image, averaged.
struct ImageStatistics {
  double mean_abs = 0.0;
  double laplacian_variance = 0.0;
};
ImageStatistics image_statistics(const torch::Tensor& images);

}  // namespace diffuse

namespace diffuse {

// `diffuse distill` as one call: the prior from a diffuse checkpoint (its EMA weights unless
// told otherwise), the generator and, for VSD, ε_φ from a second copy of the network.
// OUT receives config.yaml (the checkpoint and the resolved options), metrics.jsonl and
// curves.png (t, loss, mean |x|, Laplacian variance every log_every steps), snapshots/ (one
// row of renders every snapshot_every steps) and progress.png (those rows stacked, in
// order), state.pt (resumable: running again with the same OUT and options continues where
// it stopped; other options are refused), renders/particle_K[_classC].png and final.png, for volume
// turntable.png (rows = particles, columns = views around the circle) and turntable/, and
// distill.json (the final figures).
struct DistillRunOptions {
  std::string checkpoint;
  ScoreDistillationOptions distill;
  std::string out_dir;
  torch::Device device = torch::kCPU;
  bool use_ema = true;
  const std::atomic<bool>* stop_requested = nullptr;  // set: save the state and return
};

struct DistillRunResult {
  int steps_done = 0;
  bool resumed = false;
  bool interrupted = false;
  ImageStatistics statistics;  // of the final renders (volume: the turntable's views)
  double seconds = 0.0;        // of this call's steps
};

DistillRunResult run_score_distillation(const DistillRunOptions& options);

}  // namespace diffuse
