#pragma once
// Differentiable generators g(ψ) for score distillation (score_distillation.h): n particles,
// each a set of parameters ψ_k rendered to an image [C, H, W] in the model's data range.
//   pixels  the image itself (ψ = x), the 2-D setting of the SDS/VSD/SDI papers;
//   field   a 2-D neural field x(p) = MLP(γ(p)) over pixel coordinates p ∈ [-1, 1]², with
//           random Fourier features γ(p) = [sin 2πBp, cos 2πBp] (Tancik et al. 2020, eq. 5)
//           or a SIREN, sin(ω0 (W p + b)) layers (Sitzmann et al. 2020, §3.2): the 2-D
//           analogue of a NeRF;
//   volume  a density + colour voxel grid seen by a pinhole camera on a circle around it and
//           rendered by ray marching with alpha compositing (NeRF, Mildenhall et al. 2020,
//           eq. 3), the DreamFusion setting: the 2-D prior shapes a 3-D object.
// Every generator renders through ordinary tensor operations, so autograd gives ∂g/∂ψ.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "diffuse/core/option_schema.h"

namespace diffuse {

enum class GeneratorKind { pixels, field, volume };
inline constexpr std::array<EnumName<GeneratorKind>, 3> kGeneratorKindNames{{
    {"pixels", GeneratorKind::pixels},
    {"field", GeneratorKind::field},
    {"volume", GeneratorKind::volume},
}};

enum class FieldEncoding { fourier, siren };
inline constexpr std::array<EnumName<FieldEncoding>, 2> kFieldEncodingNames{{
    {"fourier", FieldEncoding::fourier},
    {"siren", FieldEncoding::siren},
}};

struct FieldOptions {
  FieldEncoding encoding = FieldEncoding::fourier;
  int64_t features = 64;        // Fourier features (sin and cos each), or the SIREN's width
  double fourier_scale = 6.0;   // std of B's entries: cycles per unit of p
  double siren_omega = 30.0;    // ω0 of the SIREN's layers
  int64_t hidden = 64;          // width of the hidden layers
  int64_t layers = 3;           // hidden layers
};

struct VolumeOptions {
  int64_t grid = 24;                 // voxels per side of the cube [-1, 1]³
  int64_t ray_samples = 48;          // points per ray between the cube's near and far ends
  double camera_distance = 3.0;      // from the cube's centre
  double elevation_degrees = 15.0;   // the camera circle's height above the equator
  double fov_degrees = 45.0;         // vertical field of view
  int64_t turntable_views = 8;       // views of the turntable written at the end
};

struct GeneratorOptions {
  GeneratorKind kind = GeneratorKind::pixels;
  FieldOptions field;    // key "field", read only for kind field
  VolumeOptions volume;  // key "volume", read only for kind volume
};

// n particles rendering [C, H, W] images each.
struct RenderShape {
  int64_t particles = 1, channels = 1, height = 28, width = 28;
};

class ImageGenerator : public torch::nn::Module {
 public:
  // [n, C, H, W]. azimuths: [n] radians, the camera of each particle (volume only; the 2-D
  // generators ignore it and may be given an undefined tensor).
  virtual torch::Tensor render(const torch::Tensor& azimuths) = 0;
  // Whether renders depend on the view (cameras are drawn at random while optimising).
  virtual bool has_views() const { return false; }
  const RenderShape& shape() const { return shape_; }

 protected:
  explicit ImageGenerator(RenderShape shape) : shape_(shape) {}

 private:
  RenderShape shape_;
};

// Builds a generator with particle k initialised from seed seeds[k] (one per particle).
// Throws ConfigError for options out of range (generator_options_schema's checks).
std::shared_ptr<ImageGenerator> make_image_generator(const GeneratorOptions& options, const RenderShape& shape,
                                                     const std::vector<uint64_t>& seeds);

// The `generator` mapping of a score-distillation task: kind plus that kind's own section.
const OptionSchema<GeneratorOptions>& generator_options_schema();

}  // namespace diffuse
