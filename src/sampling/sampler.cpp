// The sampler table (sampler.h): one row per sampler, its NFE formula and capabilities.
#include "diffuse/sampling/sampler.h"

#include <string>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
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

namespace diffuse {
namespace {

int64_t one_nfe_per_step(int64_t steps, const SamplerOptions&) { return steps; }
int64_t heun_nfe_to_zero(int64_t steps, const SamplerOptions&) {
  return heun_nfe(steps, /*ends_at_zero=*/true);
}

std::vector<SamplerOwnOption> langevin_options(const SamplerOptions& o) {
  return {{"langevin_steps", std::to_string(o.langevin_steps)}, {"langevin_eps", format_double(o.langevin_eps)}};
}
std::vector<SamplerOwnOption> pc_options(const SamplerOptions& o) {
  return {{"predictor", o.predictor}, {"corrector_steps", std::to_string(o.corrector_steps)},
          {"snr", format_double(o.snr)}};
}

bool never(const SamplerOptions&) { return false; }
bool always(const SamplerOptions&) { return true; }
bool with_eta(const SamplerOptions& options) { return options.eta != 0.0; }
bool with_churn(const SamplerOptions& options) { return options.s_churn != 0.0; }

}  // namespace

const std::vector<SamplerEntry>& sampler_table() {
  using G = SamplerGrid;
  // name, description, function, NFE, predicts, ode, stochastic, default η, grid, learned variance,
  // own options
  static const std::vector<SamplerEntry> kTable{
      {"ddpm", "DDPM ancestral sampling (posterior variance), meant for all T steps of a VP grid",
       sample_ddpm, one_nfe_per_step, true, false, always, 1.0, G::vp_training, true, nullptr},
      {"ddim", "DDIM with eta (0 = deterministic, equal to Euler; 1 = ancestral)", sample_ddim,
       one_nfe_per_step, true, true, with_eta, 0.0, G::spacing, false, nullptr},
      {"euler", "Euler on the probability-flow ODE (Karras et al. 2022, Algorithm 1)",
       sample_euler, one_nfe_per_step, true, true, never, 1.0, G::spacing, false, nullptr},
      {"heun", "Heun 2nd order with optional churn (Karras et al. 2022, Algorithm 2)",
       sample_heun, heun_nfe_to_zero, true, true, with_churn, 1.0, G::spacing, false, nullptr},
      {"dpmpp2m", "DPM-Solver++(2M), 2nd-order multistep (Lu et al. 2022)", sample_dpmpp_2m,
       one_nfe_per_step, true, true, never, 1.0, G::spacing, false, nullptr},
      {"euler_a", "Euler ancestral with eta and s_noise (k-diffusion), the DDIM(eta) step",
       sample_euler_ancestral, one_nfe_per_step, true, false, always, 1.0, G::spacing, false, nullptr},
      {"sde_ve", "reverse-time VE SDE, Euler-Maruyama (Song et al. 2021, eq. 6 and 47)",
       sample_sde_ve, one_nfe_per_step, true, false, always, 1.0, G::spacing, false, nullptr},
      {"sde_vp", "reverse-time VP SDE, Euler-Maruyama in the VP state (Song et al. 2021, eq. 6)",
       sample_sde_vp, one_nfe_per_step, true, false, always, 1.0, G::spacing, false, nullptr},
      {"langevin", "annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), langevin_steps per level",
       sample_langevin, langevin_nfe, false, false, always, 1.0, G::spacing, false, langevin_options},
      {"pc", "predictor-corrector: a predictor plus corrector_steps Langevin steps with snr (Song et al. 2021)",
       sample_pc, pc_nfe, false, false, always, 1.0, G::spacing, false, pc_options},
      {"consistency", "consistency sampling: one step, or multistep re-noising (Song et al. 2023, Algorithm 1)",
       sample_consistency, one_nfe_per_step, false, false, always, 1.0, G::spacing, false, nullptr},
  };
  return kTable;
}

std::string sampler_names(bool (*filter)(const SamplerEntry&)) {
  return join(names_of(sampler_table(), [&](const SamplerEntry& entry) { return !filter || filter(entry); }));
}

const SamplerEntry& find_sampler(const std::string& name) {
  if (const auto* entry = find_by_name(sampler_table(), name)) return *entry;
  throw ConfigError("unknown sampler '" + name + "'; valid samplers: " + sampler_names());
}

}  // namespace diffuse
