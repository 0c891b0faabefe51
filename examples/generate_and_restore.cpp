// diffuse as a library: the calls behind `diffuse sample` and `diffuse restore`.
//   generate_and_restore CHECKPOINT OUT_DIR
// samples 8 images with DPM-Solver++(2M), writes OUT_DIR/samples.png, then blanks a box in
// each sample and restores it with DPS, printing the PSNR of every restoration.
#include <torch/torch.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "diffuse/inference/loaded_model.h"
#include "diffuse/inverse/restore.h"
#include "diffuse/io/image_io.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/sampling/generation_policy.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CHECKPOINT OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const std::filesystem::path out_dir = argv[2];
    std::filesystem::create_directories(out_dir);
    diffuse::LoadedModel model = diffuse::load_model_for_inference(argv[1], /*use_ema=*/true, torch::kCPU);

    diffuse::GenerateOptions generate;
    generate.sampler = "dpmpp2m";
    generate.steps = 20;
    generate.seeds = {0, 1, 2, 3, 4, 5, 6, 7};
    generate.sampler_options.clip_denoised = diffuse::default_clip_denoised(model.config.data);
    for (int64_t k = 0; k < model.config.model.num_classes; ++k) generate.labels.push_back(k);
    const diffuse::GenerateResult samples = diffuse::generate(model.precond, generate);
    diffuse::write_image_grid((out_dir / "samples.png").string(), samples.images, 4);
    std::printf("%lld samples, %lld network evaluations\n", static_cast<long long>(samples.images.size(0)),
                static_cast<long long>(samples.nfe));

    diffuse::RestoreRequest request;
    request.task.op.name = "inpaint_box";
    request.task.op.box_size = model.config.model.image_size / 2;
    request.task.steps = 100;
    request.clean = samples.images;
    request.seeds = generate.seeds;
    const diffuse::RestoreResult restored = diffuse::restore(model.precond, request);
    for (int64_t k = 0; k < restored.restored.size(0); ++k)
      std::printf("image %lld: PSNR %.2f dB restored, %.2f dB with the hole\n", static_cast<long long>(k),
                  restored.quality.psnr[k].item<double>(), restored.naive_quality.psnr[k].item<double>());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
