#pragma once
// Restoration quality metrics for images in the data range [-1, 1], one value per image.
#include <torch/torch.h>

namespace diffuse {

// Peak signal-to-noise ratio in dB with peak = data range = 2:
// PSNR = 10 log10(2² / MSE), MSE over all channels and pixels of each image. Identical
// images give +inf. image, reference: [B, C, H, W] → [B] float64.
torch::Tensor psnr(const torch::Tensor& image, const torch::Tensor& reference);

// Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004, IEEE TIP 13(4), eq. 13):
// local statistics under an 11 × 11 Gaussian window with σ = 1.5 (normalised to sum 1),
// C1 = (K1 L)², C2 = (K2 L)² with K1 = 0.01, K2 = 0.03 and L = 2 (the data range); the SSIM
// map covers the "valid" window positions (as in the authors' MATLAB ssim_index), is
// averaged per channel, then over channels. Needs H, W >= 11. [B, C, H, W] → [B] float64.
torch::Tensor ssim(const torch::Tensor& image, const torch::Tensor& reference);

}  // namespace diffuse
