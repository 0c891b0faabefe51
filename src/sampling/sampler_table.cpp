#include <string>

#include "diffuse/core/error.h"
#include "diffuse/sampling/consistency.h"
#include "diffuse/sampling/ddim.h"
#include "diffuse/sampling/ddpm.h"
#include "diffuse/sampling/dpmpp_2m.h"
#include "diffuse/sampling/euler.h"
#include "diffuse/sampling/euler_ancestral.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/sampling/langevin.h"
#include "diffuse/sampling/predictor_corrector.h"
#include "diffuse/sampling/reverse_sde.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {
namespace {

int64_t one_nfe_per_step(int64_t steps, const SamplerOptions&) { return steps; }
int64_t heun_nfe_to_zero(int64_t steps, const SamplerOptions&) {
  return heun_nfe(steps, /*ends_at_zero=*/true);
}

}  // namespace

const std::vector<SamplerEntry>& sampler_table() {
  static const std::vector<SamplerEntry> kTable{
      {"ddpm", "DDPM ancestral sampling (posterior variance), meant for all T steps of a VP grid",
       sample_ddpm, one_nfe_per_step, true, false},
      {"ddim", "DDIM with eta (0 = deterministic, equal to Euler; 1 = ancestral)", sample_ddim,
       one_nfe_per_step, true, true},
      {"euler", "Euler on the probability-flow ODE (Karras et al. 2022, Algorithm 1)",
       sample_euler, one_nfe_per_step, true, true},
      {"heun", "Heun 2nd order with optional churn (Karras et al. 2022, Algorithm 2)",
       sample_heun, heun_nfe_to_zero, true, true},
      {"dpmpp2m", "DPM-Solver++(2M), 2nd-order multistep (Lu et al. 2022)", sample_dpmpp_2m,
       one_nfe_per_step, true, true},
      {"euler_a", "Euler ancestral with eta and s_noise (k-diffusion), the DDIM(eta) step",
       sample_euler_ancestral, one_nfe_per_step, true, false},
      {"sde_ve", "reverse-time VE SDE, Euler-Maruyama (Song et al. 2021, eq. 6 and 47)",
       sample_sde_ve, one_nfe_per_step, true, false},
      {"sde_vp", "reverse-time VP SDE, Euler-Maruyama in the VP state (Song et al. 2021, eq. 6)",
       sample_sde_vp, one_nfe_per_step, true, false},
      {"langevin", "annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), langevin_steps per level",
       sample_langevin, langevin_nfe, false, false},
      {"pc", "predictor-corrector: a predictor plus corrector_steps Langevin steps with snr (Song et al. 2021)",
       sample_pc, pc_nfe, false, false},
      {"consistency", "consistency sampling: one step, or multistep re-noising (Song et al. 2023, Algorithm 1)",
       sample_consistency, one_nfe_per_step, false, false},
  };
  return kTable;
}

const SamplerEntry& find_sampler(const std::string& name) {
  std::string names;
  for (const auto& entry : sampler_table()) {
    if (name == entry.name) return entry;
    names += (names.empty() ? "" : ", ") + std::string(entry.name);
  }
  throw ConfigError("unknown sampler '" + name + "'; valid samplers: " + names);
}

}  // namespace diffuse
