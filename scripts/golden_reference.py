#!/usr/bin/env python3
"""Golden values for tests/analytic/sampler_golden_test.cpp, from the reference samplers.

Runs k-diffusion's own samplers (k_diffusion.sampling.sample_euler, sample_heun,
sample_dpmpp_2m, on get_sigmas_karras grids) and diffusers' own schedulers (DDIMScheduler
with eta 0; DPMSolverMultistepScheduler with algorithm_type "dpmsolver++", solver_order 2,
use_karras_sigmas) on a fixed analytic denoiser and a fixed initial x, in float64, and
writes the σ grids and the final samples to tests/data/golden/sampler_golden.json together
with the package versions used, so that CTest needs neither Python nor these packages.

The denoiser is the exact posterior mean D(x; σ) = E[x0 | x] of a 2-D Gaussian mixture,
x = x0 + σ n (the formula of tests/support/analytic_denoiser.h, written here in torch; the
mixture is stored in the JSON and the C++ test denoises with its own mixture_denoise).

diffusers works in VP space with ε-prediction: at ᾱ (DDIM) or at diffusers' σ (DPM-Solver,
α = 1/√(1+σ²)) the model sees x_t = √ᾱ x̃ and answers ε = (x̃ - D(x̃; σ))/σ with
σ = √((1-ᾱ)/ᾱ), x̃ = x_t/√ᾱ, so that diffusers' x0 prediction (x_t - √(1-ᾱ) ε)/√ᾱ is D.
Both sides end at σ = 0, where x_0 needs no conversion.

Installing: the script installs nothing. It needs torch, numpy, diffusers and k-diffusion.
k_diffusion/__init__.py imports the whole package (models, evaluation, ...) and its heavy
optional dependencies, so install k-diffusion without them and let this script load only
k_diffusion/sampling.py and k_diffusion/utils.py (which sampling.py imports) through a bare
package module; sampling.py's own imports still need scipy, torchdiffeq, torchsde (with
trampoline), tqdm, and utils.py's pillow, safetensors and torchvision. From PyPI only:

  python3 -m venv /tmp/gv
  /tmp/gv/bin/pip install torch torchvision numpy diffusers scipy tqdm pillow safetensors
  /tmp/gv/bin/pip install --no-deps k-diffusion torchdiffeq torchsde trampoline
  /tmp/gv/bin/python scripts/golden_reference.py

or reuse an environment that has torch and diffusers (e.g. build-torch2/venv) and put the
rest on PYTHONPATH:

  build-torch2/venv/bin/pip install --no-deps --target /tmp/kd k-diffusion scipy \\
      torchdiffeq torchsde trampoline
  PYTHONPATH=/tmp/kd build-torch2/venv/bin/python scripts/golden_reference.py

usage: golden_reference.py [--out tests/data/golden/sampler_golden.json]
"""
import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import math
import pathlib
import platform
import sys
import types

import numpy as np
import torch

# The mixture of tests/analytic/sampler_ode_test.cpp's three_modes_2d: separated modes of
# unequal widths, so D is far from linear and a wrong step coefficient moves samples visibly.
MIXTURE = {
    "weights": [0.5, 0.3, 0.2],
    "means": [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]],
    "variances": [0.25, 0.36, 0.16],
}

# diffusers' default training schedule (DDPMScheduler / DDIMScheduler: "linear" β from
# 1e-4 to 0.02 over 1000 steps, Ho et al. 2020 §4).
VP_LINEAR = {"timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}

KARRAS = {"steps": 12, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0}


def load_k_diffusion_sampling():
    """k_diffusion.sampling without running k_diffusion/__init__.py (see the module doc)."""
    spec = importlib.util.find_spec("k_diffusion")  # locates the package, executes nothing
    if spec is None:
        sys.exit("k-diffusion is not installed; see the top of this script")
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    return importlib.import_module("k_diffusion.sampling")


def mixture_denoise(x, sigma):
    """E[x0 | x] for x = x0 + σ n, x0 ~ Σ_k π_k N(μ_k, s_k² I); x [B, d], sigma [B]."""
    mu = torch.tensor(MIXTURE["means"], dtype=torch.float64)  # [K, d]
    s2 = torch.tensor(MIXTURE["variances"], dtype=torch.float64)  # [K]
    log_pi = torch.tensor(MIXTURE["weights"], dtype=torch.float64).log()
    var = s2.unsqueeze(0) + sigma.square().unsqueeze(1)  # [B, K]
    sq_dist = (x.unsqueeze(1) - mu.unsqueeze(0)).square().sum(-1)  # [B, K]
    d = x.shape[1]
    log_joint = log_pi.unsqueeze(0) - 0.5 * sq_dist / var - 0.5 * d * (var.log() + math.log(2 * math.pi))
    w = torch.softmax(log_joint, 1)  # log-sum-exp normalised responsibilities
    shrink = (s2.unsqueeze(0) / var).unsqueeze(2)  # [B, K, 1]
    posterior_means = mu.unsqueeze(0) + shrink * (x.unsqueeze(1) - mu.unsqueeze(0))
    return (w.unsqueeze(2) * posterior_means).sum(1)


def initial_x(sigma_max):
    """A fixed start at σ_max, x = σ_max n with n deterministic (no RNG on either side):
    a ramp and a cosine of it, so that the 8 points end in all three modes."""
    ramp = torch.linspace(-1.5, 1.5, 8)
    n = torch.stack([ramp, 1.2 * torch.cos(math.pi * ramp)], dim=1)
    return sigma_max * n


def flat(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def k_diffusion_cases(sampling):
    sigmas = sampling.get_sigmas_karras(KARRAS["steps"], KARRAS["sigma_min"], KARRAS["sigma_max"], rho=KARRAS["rho"])
    x_init = initial_x(float(sigmas[0]))
    cases = []
    for sampler, fn in [("euler", sampling.sample_euler), ("heun", sampling.sample_heun),
                        ("dpmpp2m", sampling.sample_dpmpp_2m)]:
        out = fn(mixture_denoise, x_init.clone(), sigmas, disable=True)
        cases.append({
            "name": f"k_diffusion_{sampler}",
            "sampler": sampler,
            "reference": f"k_diffusion.sampling.{fn.__name__} on get_sigmas_karras",
            "grid": dict(KARRAS, kind="karras"),
            "sigmas": flat(sigmas),
            "x_init": flat(x_init),
            "x_out": flat(out),
        })
    return cases


def float64_alphas_cumprod():
    """ᾱ_t of diffusers' "linear" schedule in float64. diffusers builds β with
    torch.linspace(..., dtype=torch.float32), which would cap the comparison at float32
    precision; this is the same definition (Ho et al. 2020 §4) in float64."""
    betas = torch.linspace(VP_LINEAR["beta_start"], VP_LINEAR["beta_end"], VP_LINEAR["timesteps"],
                           dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def sigma_of(alpha_bar):
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


def ddim_case(steps, spacing):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=VP_LINEAR["timesteps"], beta_start=VP_LINEAR["beta_start"],
                              beta_end=VP_LINEAR["beta_end"], beta_schedule="linear", clip_sample=False,
                              set_alpha_to_one=True, timestep_spacing=spacing, steps_offset=0)
    # diffusers' own float32 ᾱ at its timesteps: pins the β schedule at float32 precision.
    diffusers_float32_sigmas = sigma_of(scheduler.alphas_cumprod.to(torch.float64))
    scheduler.alphas_cumprod = float64_alphas_cumprod()
    scheduler.set_timesteps(steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    alpha_bar = scheduler.alphas_cumprod
    # σ of each timestep, then the σ = 0 that set_alpha_to_one gives the last step.
    sigmas = [float(sigma_of(alpha_bar[t])) for t in timesteps] + [0.0]
    x_tilde = initial_x(sigmas[0])
    sample = alpha_bar[timesteps[0]].sqrt() * x_tilde
    for t in scheduler.timesteps:
        a = alpha_bar[int(t)]
        sigma = sigma_of(a)
        x_t = sample / a.sqrt()
        eps = (x_t - mixture_denoise(x_t, sigma.expand(x_t.shape[0]))) / sigma
        sample = scheduler.step(eps, t, sample, eta=0.0).prev_sample
    return {
        "name": f"diffusers_ddim_{spacing}",
        "sampler": "ddim",
        "reference": f"diffusers.DDIMScheduler eta=0, timestep_spacing={spacing}, float64 alphas_cumprod",
        "grid": dict(VP_LINEAR, kind="vp_linear", steps=steps, spacing=spacing),
        "timesteps": timesteps,
        "sigmas": sigmas,
        "diffusers_float32_sigmas": [float(diffusers_float32_sigmas[t]) for t in timesteps] + [0.0],
        "x_init": flat(x_tilde),
        "x_out": flat(sample),
    }


def dpm_solver_case(steps):
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=VP_LINEAR["timesteps"],
                                            beta_start=VP_LINEAR["beta_start"], beta_end=VP_LINEAR["beta_end"],
                                            beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2,
                                            prediction_type="epsilon", use_karras_sigmas=True,
                                            final_sigmas_type="zero")
    # float64 ᾱ as for DDIM: from float32 ᾱ ≈ 1 - 1e-4, σ_min = √((1-ᾱ)/ᾱ) would carry a
    # relative error ~1e-4 into every σ of the Karras grid.
    scheduler.alphas_cumprod = float64_alphas_cumprod()
    scheduler.set_timesteps(steps)
    # set_timesteps still casts the σ list to float32, and step rounds the sample to float32
    # ("Upcast to avoid precision issues"): this case agrees to float32 precision only.
    sigmas = scheduler.sigmas.to(torch.float64)
    x_tilde = initial_x(float(sigmas[0]))
    sample = x_tilde / (1.0 + sigmas[0] ** 2).sqrt()  # x_t = α x̃, α = 1/√(1+σ²)
    for i, t in enumerate(scheduler.timesteps):
        # The analytic model reads σ from the scheduler, not from the rounded timestep t.
        sigma = sigmas[i]
        x_t = sample * (1.0 + sigma ** 2).sqrt()
        eps = (x_t - mixture_denoise(x_t, sigma.expand(x_t.shape[0]))) / sigma
        sample = scheduler.step(eps, t, sample).prev_sample
    return {
        "name": "diffusers_dpmpp2m_karras",
        "sampler": "dpmpp2m",
        "reference": "diffusers.DPMSolverMultistepScheduler dpmsolver++, solver_order=2, use_karras_sigmas",
        "grid": dict(VP_LINEAR, kind="vp_linear", steps=steps, spacing="karras"),
        "timesteps": [int(t) for t in scheduler.timesteps],
        "sigmas": flat(sigmas),
        "x_init": flat(x_tilde),
        "x_out": flat(sample.to(torch.float64)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--out", default=str(root / "tests/data/golden/sampler_golden.json"))
    args = parser.parse_args()

    # get_sigmas_karras and the samplers allocate with the default dtype.
    torch.set_default_dtype(torch.float64)
    sampling = load_k_diffusion_sampling()
    cases = k_diffusion_cases(sampling)
    cases += [ddim_case(50, "trailing"), ddim_case(20, "leading"), dpm_solver_case(12)]

    data = {
        "generator": "scripts/golden_reference.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "k-diffusion": importlib.metadata.version("k-diffusion"),
            "diffusers": importlib.metadata.version("diffusers"),
        },
        "mixture": MIXTURE,
        "x_shape": list(initial_x(1.0).shape),
        "cases": cases,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
