#include "diffuse/distill/image_generator.h"

#include <cmath>
#include <string>

#include "diffuse/core/error.h"

namespace diffuse {
namespace {
namespace F = torch::nn::functional;

// One tensor of `shape` per particle, drawn from its own generator, stacked to [n, *shape]:
// particle k's start does not depend on how many particles there are.
torch::Tensor per_particle(const std::vector<uint64_t>& seeds, uint64_t stream, torch::IntArrayRef shape,
                           bool normal) {
  std::vector<torch::Tensor> rows;
  for (uint64_t seed : seeds) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 0x9E3779B97F4A7C15ULL + stream);
    rows.push_back(normal ? torch::randn(shape, gen, torch::kFloat32) : torch::rand(shape, gen, torch::kFloat32));
  }
  return torch::stack(rows);
}

torch::Tensor uniform_particles(const std::vector<uint64_t>& seeds, uint64_t stream, torch::IntArrayRef shape,
                                double bound) {
  return (per_particle(seeds, stream, shape, false) * 2 - 1) * bound;
}

class PixelGenerator : public ImageGenerator {
 public:
  PixelGenerator(const RenderShape& s, const std::vector<uint64_t>& seeds) : ImageGenerator(s) {
    pixels_ = register_parameter("pixels", per_particle(seeds, 0, {s.channels, s.height, s.width}, true));
  }
  torch::Tensor render(const torch::Tensor&) override { return pixels_; }

 private:
  torch::Tensor pixels_;
};

// n independent MLPs evaluated together: layer l holds weights [n, in, out] and biases
// [n, 1, out], applied with one batched matmul over the H·W pixel coordinates.
class NeuralFieldGenerator : public ImageGenerator {
 public:
  NeuralFieldGenerator(const FieldOptions& o, const RenderShape& s, const std::vector<uint64_t>& seeds)
      : ImageGenerator(s), options_(o) {
    // Pixel centres in [-1, 1]², x along the width, y along the height: [H·W, 2].
    const auto ys = (torch::arange(s.height, torch::kFloat32) + 0.5) / s.height * 2 - 1;
    const auto xs = (torch::arange(s.width, torch::kFloat32) + 0.5) / s.width * 2 - 1;
    const auto grid = torch::stack({xs.view({1, -1}).expand({s.height, s.width}),
                                    ys.view({-1, 1}).expand({s.height, s.width})}, -1);
    coords_ = register_buffer("coords", grid.reshape({-1, 2}));
    int64_t in = 2;
    if (o.encoding == FieldEncoding::fourier) {
      frequencies_ = register_buffer("frequencies", per_particle(seeds, 1, {2, o.features}, true) * o.fourier_scale);
      in = 2 * o.features;
    }
    for (int64_t l = 0; l <= o.layers; ++l) {
      const int64_t out = l == o.layers ? s.channels : o.hidden;
      const uint64_t stream = 2 + 2 * static_cast<uint64_t>(l);
      double bound;  // ReLU layers: He-uniform; SIREN: Sitzmann et al. 2020 §3.2 and App. 1.5
      if (o.encoding == FieldEncoding::fourier) bound = std::sqrt(6.0 / static_cast<double>(in));
      else bound = l == 0 ? 1.0 / static_cast<double>(in) : std::sqrt(6.0 / static_cast<double>(in)) / o.siren_omega;
      weights_.push_back(register_parameter("weight" + std::to_string(l), uniform_particles(seeds, stream, {in, out}, bound)));
      biases_.push_back(register_parameter(
          "bias" + std::to_string(l), uniform_particles(seeds, stream + 1, {1, out}, 1.0 / std::sqrt(static_cast<double>(in)))));
      in = out;
    }
  }

  torch::Tensor render(const torch::Tensor&) override {
    const auto& s = shape();
    auto h = coords_.unsqueeze(0).expand({s.particles, -1, -1});  // [n, HW, 2]
    if (options_.encoding == FieldEncoding::fourier) {
      const auto angles = 2 * M_PI * torch::bmm(h, frequencies_);  // Tancik et al. 2020, eq. 5
      h = torch::cat({torch::sin(angles), torch::cos(angles)}, -1);
    }
    for (size_t l = 0; l < weights_.size(); ++l) {
      h = torch::baddbmm(biases_[l], h, weights_[l]);
      if (l + 1 == weights_.size()) break;
      h = options_.encoding == FieldEncoding::siren ? torch::sin(options_.siren_omega * h) : torch::relu(h);
    }
    // tanh keeps the image in the data range [-1, 1].
    return torch::tanh(h).transpose(1, 2).reshape({s.particles, s.channels, s.height, s.width});
  }

 private:
  FieldOptions options_;
  torch::Tensor coords_, frequencies_;
  std::vector<torch::Tensor> weights_, biases_;
};

// Voxels [n, 1 + C, G, G, G] over the cube [-1, 1]³: a density logit and C colour logits.
// Density σ = softplus(logit), colour tanh(logit); outside the cube the density is 0 and the
// background is black (-1), like the Fashion-MNIST images.
class VolumeGenerator : public ImageGenerator {
 public:
  VolumeGenerator(const VolumeOptions& o, const RenderShape& s, const std::vector<uint64_t>& seeds)
      : ImageGenerator(s), options_(o) {
    const int64_t g = o.grid;
    // A faint start (optical depth about 0.25 across the cube) that the gradients carve out.
    auto voxels = per_particle(seeds, 0, {1 + s.channels, g, g, g}, true) * 0.1;
    voxels.select(1, 0).sub_(2.0);
    voxels_ = register_parameter("voxels", voxels);
  }

  bool has_views() const override { return true; }

  torch::Tensor render(const torch::Tensor& azimuths) override {
    const auto& s = shape();
    TORCH_CHECK(azimuths.defined() && azimuths.numel() == s.particles, "volume render: one azimuth per particle");
    const auto opt = voxels_.options();
    const auto az = azimuths.to(opt).view({-1, 1});
    const double elevation = options_.elevation_degrees * M_PI / 180.0, radius = options_.camera_distance;
    // Camera on the circle at height `elevation`, looking at the origin, y up.
    const auto camera = torch::cat({std::cos(elevation) * torch::sin(az), torch::full_like(az, std::sin(elevation)),
                                    std::cos(elevation) * torch::cos(az)}, 1) * radius;  // [n, 3]
    const auto forward = -camera / radius;
    const auto world_up = torch::tensor({0.0, 1.0, 0.0}, opt).expand_as(forward);
    const auto right = F::normalize(torch::cross(forward, world_up, 1), F::NormalizeFuncOptions().dim(1));
    const auto up = torch::cross(right, forward, 1);
    const double half = std::tan(options_.fov_degrees * M_PI / 360.0);
    const auto v = -((torch::arange(s.height, opt) + 0.5) / s.height * 2 - 1) * half;  // rows, top first
    const auto u = ((torch::arange(s.width, opt) + 0.5) / s.width * 2 - 1) * half * s.width / s.height;
    auto dirs = forward.view({-1, 1, 1, 3}) + u.view({1, 1, -1, 1}) * right.view({-1, 1, 1, 3}) +
                v.view({1, -1, 1, 1}) * up.view({-1, 1, 1, 3});  // [n, H, W, 3]
    dirs = F::normalize(dirs, F::NormalizeFuncOptions().dim(-1));
    // Midpoints of ray_samples equal segments through the cube's bounding sphere.
    const double near = radius - std::sqrt(3.0), far = radius + std::sqrt(3.0);
    const int64_t S = options_.ray_samples;
    const double delta = (far - near) / static_cast<double>(S);
    const auto depths = near + (torch::arange(S, opt) + 0.5) * delta;
    const auto points = camera.view({-1, 1, 1, 1, 3}) + dirs.unsqueeze(3) * depths.view({1, 1, 1, -1, 1});
    const auto inside = (points.abs() <= 1.0).all(-1).to(opt);  // [n, H, W, S]
    const auto sampled = F::grid_sample(voxels_, points, F::GridSampleFuncOptions()
                                                             .mode(torch::kBilinear)
                                                             .padding_mode(torch::kBorder)
                                                             .align_corners(true));  // [n, 1+C, H, W, S]
    const auto density = F::softplus(sampled.select(1, 0)) * inside;
    const auto colour = torch::tanh(sampled.narrow(1, 1, s.channels));
    // NeRF's quadrature (Mildenhall et al. 2020, eq. 3): w_k = T_k (1 − exp(−σ_k δ)),
    // T_k = exp(−Σ_{j<k} σ_j δ).
    const auto optical = density * delta;
    const auto transmittance = torch::exp(-(torch::cumsum(optical, -1) - optical));
    const auto weights = transmittance * (1 - torch::exp(-optical));
    const auto image = (weights.unsqueeze(1) * colour).sum(-1);
    return image - (1 - weights.sum(-1)).unsqueeze(1);  // background -1
  }

 private:
  VolumeOptions options_;
  torch::Tensor voxels_;
};

}  // namespace

std::shared_ptr<ImageGenerator> make_image_generator(const GeneratorOptions& options, const RenderShape& shape,
                                                     const std::vector<uint64_t>& seeds) {
  generator_options_schema().validate(options, "generator");
  if (static_cast<int64_t>(seeds.size()) != shape.particles)
    throw ConfigError("make_image_generator: " + std::to_string(seeds.size()) + " seeds for " +
                      std::to_string(shape.particles) + " particles");
  switch (options.kind) {
    case GeneratorKind::pixels:
      return std::make_shared<PixelGenerator>(shape, seeds);
    case GeneratorKind::field:
      return std::make_shared<NeuralFieldGenerator>(options.field, shape, seeds);
    case GeneratorKind::volume:
      return std::make_shared<VolumeGenerator>(options.volume, shape, seeds);
  }
  throw std::logic_error("make_image_generator: unknown generator kind");
}

namespace {

OptionSchema<FieldOptions> make_field_schema() {
  using O = FieldOptions;
  const auto fourier =
      only_for("encoding", &O::encoding, kFieldEncodingNames, FieldEncoding::fourier);
  OptionSchema<O> s;
  s.choice(
      "encoding", &O::encoding, kFieldEncodingNames,
      "γ(p): random Fourier features (Tancik et al. 2020) or SIREN layers (Sitzmann et al. 2020)");
  s.field("features", &O::features, "fourier: Fourier features (sin and cos each)",
          checks::int_range<int64_t>(1, 4096))
      .applies(fourier);
  s.field("fourier_scale", &O::fourier_scale, "fourier: std of B's entries, cycles per unit of p",
          checks::range(1e-6, 1000.0))
      .applies(fourier);
  s.field("siren_omega", &O::siren_omega, "siren: ω0 of the sine layers",
          checks::range(1e-6, 1000.0))
      .applies(only_for("encoding", &O::encoding, kFieldEncodingNames, FieldEncoding::siren));
  s.field("hidden", &O::hidden, "width of the hidden layers", checks::int_range<int64_t>(1, 4096));
  s.field("layers", &O::layers, "hidden layers", checks::int_range<int64_t>(1, 16));
  return s;
}

OptionSchema<VolumeOptions> make_volume_schema() {
  using O = VolumeOptions;
  OptionSchema<O> s;
  s.field("grid", &O::grid, "voxels per side of the cube [-1, 1]³",
          checks::int_range<int64_t>(2, 256));
  s.field("ray_samples", &O::ray_samples, "points per ray between the cube's near and far ends",
          checks::int_range<int64_t>(1, 1024));
  // Outside the cube's bounding sphere (radius √3), so that every ray starts in front of the
  // object.
  s.field("camera_distance", &O::camera_distance, "the camera's distance from the cube's centre",
          checks::range(1.75, 100.0));
  s.field("elevation_degrees", &O::elevation_degrees,
          "the camera circle's height above the equator", checks::range(-89.0, 89.0));
  s.field("fov_degrees", &O::fov_degrees, "vertical field of view", checks::range(1.0, 170.0));
  s.field("turntable_views", &O::turntable_views, "views of the turntable written at the end",
          checks::int_range<int64_t>(1, 360));
  return s;
}

OptionSchema<GeneratorOptions> make_generator_schema() {
  using O = GeneratorOptions;
  OptionSchema<O> s;
  s.choice("kind", &O::kind, kGeneratorKindNames,
           "pixels: the image itself; field: a 2-D neural field; volume: a voxel grid seen by a "
           "turning camera");
  s.section("field", &O::field, built_once<make_field_schema>())
      .applies(only_for("kind", &O::kind, kGeneratorKindNames, GeneratorKind::field));
  s.section("volume", &O::volume, built_once<make_volume_schema>())
      .applies(only_for("kind", &O::kind, kGeneratorKindNames, GeneratorKind::volume));
  return s;
}

}  // namespace

const OptionSchema<GeneratorOptions>& generator_options_schema() {
  return built_once<make_generator_schema>();
}

}  // namespace diffuse
