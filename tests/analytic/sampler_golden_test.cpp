// Golden values (DESIGN §5): our deterministic samplers over a whole σ grid against the
// reference implementations, on the exact denoiser of a 2-D Gaussian mixture and a fixed
// initial x. tests/data/golden/sampler_golden.json holds the mixture, the start, the
// references' σ grids and final samples, written by scripts/golden_reference.py from
// k-diffusion (sample_euler, sample_heun, sample_dpmpp_2m, get_sigmas_karras) and diffusers
// (DDIMScheduler, DPMSolverMultistepScheduler); the versions are recorded in the file.
// Everything here is float64; the two sides differ only in the order of float operations,
// except the DPMSolverMultistepScheduler case, which diffusers computes in float32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/sampling/ddim.h"
#include "diffuse/sampling/dpmpp_2m.h"
#include "diffuse/sampling/euler.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/test_paths.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

// Float64 results of the same algorithm in a different op order: over 12-50 steps the
// rounding differences stay near 1e-15 (printed per case), far below this.
constexpr double kFloat64Tolerance = 1e-12;
// diffusers' float32: DPMSolverMultistepScheduler casts σ to float32 (set_timesteps) and
// rounds the sample to float32 in every step; its float32 ᾱ gives σ to ~1e-6 relative.
constexpr double kFloat32Tolerance = 5e-6;

using SamplerCall = torch::Tensor (*)(const Denoiser&, torch::Tensor, const std::vector<double>&,
                                      SeededNoise&, const SamplerOptions&, const SamplerCallback&);

const nlohmann::json& golden() {
  static const nlohmann::json data = [] {
    const auto path = source_dir() / "tests/data/golden/sampler_golden.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return nlohmann::json::parse(in);
  }();
  return data;
}

const nlohmann::json& golden_case(const std::string& name) {
  for (const auto& entry : golden().at("cases"))
    if (entry.at("name") == name) return entry;
  throw std::runtime_error("sampler_golden.json has no case '" + name + "'");
}

GaussianMixture golden_mixture() {
  const auto& m = golden().at("mixture");
  return GaussianMixture{m.at("weights").get<std::vector<double>>(),
                         m.at("means").get<std::vector<std::vector<double>>>(),
                         m.at("variances").get<std::vector<double>>()};
}

// |ours - reference| ≤ tolerance · max(1, |reference|) elementwise; each failure names the
// case, what is compared and the element. Returns the largest |ours - reference|.
double expect_close(const std::string& what, const std::vector<double>& ours,
                    const std::vector<double>& reference, double tolerance) {
  EXPECT_EQ(ours.size(), reference.size()) << what << ": lengths differ";
  double max_diff = 0.0;
  for (size_t i = 0; i < std::min(ours.size(), reference.size()); ++i) {
    const double diff = std::abs(ours[i] - reference[i]);
    max_diff = std::max(max_diff, diff);
    EXPECT_LE(diff, tolerance * std::max(1.0, std::abs(reference[i])))
        << what << "[" << i << "]: ours " << ours[i] << ", reference " << reference[i] << ", |diff| " << diff;
  }
  return max_diff;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto flat = t.to(torch::kFloat64).contiguous().reshape({-1});
  return {flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel()};
}

// Our σ list for a case's grid, built by our schedule code from the grid's parameters.
std::vector<double> our_sigmas(const nlohmann::json& grid) {
  if (grid.at("kind") == "karras")
    return karras_sigmas(grid.at("steps"), grid.at("sigma_min"), grid.at("sigma_max"), grid.at("rho"));
  const auto schedule = NoiseSchedule::vp_linear(grid.at("timesteps"), grid.at("beta_start"), grid.at("beta_end"));
  return sampling_sigmas(schedule, grid.at("steps"), timestep_spacing_from_name(grid.at("spacing")));
}

// Runs `sampler` from the case's x_init over our σ grid and compares the grid and the final
// sample with the reference's.
void expect_matches_reference(const std::string& name, SamplerCall sampler, double tolerance) {
  const auto& entry = golden_case(name);
  const auto sigmas = our_sigmas(entry.at("grid"));
  const double sigma_diff = expect_close(name + " sigmas", sigmas, entry.at("sigmas").get<std::vector<double>>(), tolerance);

  const auto shape = golden().at("x_shape").get<std::vector<int64_t>>();
  const auto x_init = torch::tensor(entry.at("x_init").get<std::vector<double>>(), torch::kFloat64).reshape(shape);
  std::vector<uint64_t> seeds(static_cast<size_t>(shape[0]));
  for (size_t i = 0; i < seeds.size(); ++i) seeds[i] = i;
  SeededNoise noise(seeds, torch::kCPU);  // the ODE samplers draw nothing
  const auto x_out = sampler(mixture_denoiser(golden_mixture()), x_init, sigmas, noise, SamplerOptions{}, {});
  const double out_diff = expect_close(name + " x_out", to_vector(x_out), entry.at("x_out").get<std::vector<double>>(), tolerance);
  std::printf("%s (%s): max |diff| sigmas %.3g, x_out %.3g\n", name.c_str(),
              entry.at("reference").get<std::string>().c_str(), sigma_diff, out_diff);
}

}  // namespace

TEST(SamplerGolden, EulerMatchesKDiffusion) {
  expect_matches_reference("k_diffusion_euler", sample_euler, kFloat64Tolerance);
}

TEST(SamplerGolden, HeunMatchesKDiffusion) {
  expect_matches_reference("k_diffusion_heun", sample_heun, kFloat64Tolerance);
}

TEST(SamplerGolden, Dpmpp2mMatchesKDiffusion) {
  expect_matches_reference("k_diffusion_dpmpp2m", sample_dpmpp_2m, kFloat64Tolerance);
}

TEST(SamplerGolden, Dpmpp2mMatchesDiffusersDpmSolverMultistep) {
  expect_matches_reference("diffusers_dpmpp2m_karras", sample_dpmpp_2m, kFloat32Tolerance);
}

TEST(SamplerGolden, DdimMatchesDiffusersTrailing) {
  expect_matches_reference("diffusers_ddim_trailing", sample_ddim, kFloat64Tolerance);
}

TEST(SamplerGolden, DdimMatchesDiffusersLeading) {
  expect_matches_reference("diffusers_ddim_leading", sample_ddim, kFloat64Tolerance);
}

TEST(SamplerGolden, VpGridMatchesDiffusersSchedule) {
  // The reference run uses float64 ᾱ (see the script); diffusers' own float32 ᾱ at the same
  // timesteps pins our β schedule to diffusers' "linear" one at float32 precision.
  for (const char* name : {"diffusers_ddim_trailing", "diffusers_ddim_leading"}) {
    const auto& entry = golden_case(name);
    const double diff = expect_close(std::string(name) + " sigmas vs diffusers float32", our_sigmas(entry.at("grid")),
                                     entry.at("diffusers_float32_sigmas").get<std::vector<double>>(), kFloat32Tolerance);
    std::printf("%s: max |diff| sigmas vs diffusers' float32 alphas_cumprod %.3g\n", name, diff);
  }
}
