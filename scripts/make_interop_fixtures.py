#!/usr/bin/env python3
"""Test data for the importers (tests/unit/weight_import_test.cpp), from the reference code.

dit-official: a small DiT built by models.py of github.com/facebookresearch/DiT (commit
ed81ce2229091fd4ecc9a223645f95cf379d582b; it needs timm), with every weight drawn at random
(the repository's own init zeroes the adaLN and output layers, which would hide mapping
errors), saved as the repository saves state dicts (torch.save), together with an input
(x, t, y) and the reference output of DiT.forward, so that CTest needs neither Python nor a
download. Writes tests/data/interop/dit_official.pt, the same as dit_official.safetensors,
and dit_official_io.safetensors.

diffusers-vae: a small AutoencoderKL of diffusers (random weights), saved with
save_pretrained (diffusers_vae/: config.json and diffusion_pytorch_model.safetensors), with
images, their posterior mean and log variance, latents and their decoding.

diffusers-unet2d: two small UNet2DModel of diffusers (random weights), each saved with
save_pretrained under a pipeline folder (diffusers_ddpm*/unet/) next to its scheduler's
config (scheduler/): one configured as google/ddpm-cifar10-32 is (DDPM's [sin | cos]
timestep features with frequency shift 1, GroupNorm eps 1e-6, bottom-right downsample
padding, one attention head), one with diffusers' defaults, scale-shift time conditioning,
4 channels a head and a learned variance; with an input (x, t) and the output.

diffusers-dit: a small DiTTransformer2DModel of diffusers (random weights; every block's
copy of the timestep and label embedders equal to block 0's, as in the converted DiT
checkpoints), with an input (x, t, y) and the output.

usage: make_interop_fixtures.py --dit-repo PATH_TO_DiT_CHECKOUT [--out tests/data/interop]
                                [--only dit-official,diffusers-vae,diffusers-unet2d,diffusers-dit]
"""
import argparse
import pathlib
import sys

import torch
from safetensors.torch import save_file


def dit_official(repo: pathlib.Path, out: pathlib.Path) -> None:
    sys.path.insert(0, str(repo))
    from models import DiT  # noqa: E402 - the reference implementation itself

    torch.manual_seed(0)
    model = DiT(input_size=8, patch_size=2, in_channels=4, hidden_size=128, depth=2, num_heads=2,
                mlp_ratio=2.0, class_dropout_prob=0.1, num_classes=3, learn_sigma=True)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name != "pos_embed":  # the fixed sin-cos positions stay as the repository computes them
                parameter.normal_(0.0, 0.08)
    model.eval()
    x = torch.randn(3, 4, 8, 8)
    t = torch.tensor([3.0, 250.5, 999.0])
    y = torch.tensor([0, 2, 3])  # 3: the null class of classifier-free guidance
    with torch.no_grad():
        output = model(x, t, y)
    torch.save(model.state_dict(), out / "dit_official.pt")
    # The same state dict as safetensors: LibTorch before 2.6 cannot unpickle an OrderedDict.
    save_file(model.state_dict(), str(out / "dit_official.safetensors"))
    save_file({"x": x, "t": t, "y": y, "output": output.contiguous()}, str(out / "dit_official_io.safetensors"))
    print(f"dit-official: {sum(p.numel() for p in model.parameters())} parameters, output std {output.std():.3f}")


def diffusers_vae(out: pathlib.Path) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1,
                        latent_channels=4, norm_num_groups=8, sample_size=16, scaling_factor=0.18215)
    with torch.no_grad():  # random norms and biases too, so that no mapping error hides behind an init of 1 or 0
        for parameter in vae.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    vae.eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        decoded = vae.decode(z).sample
    vae.save_pretrained(str(out / "diffusers_vae"), safe_serialization=True)
    save_file({"x": x, "mean": posterior.mean.contiguous(), "logvar": posterior.logvar.contiguous(), "z": z,
               "decoded": decoded.contiguous()}, str(out / "diffusers_vae_io.safetensors"))
    print(f"diffusers-vae: {sum(p.numel() for p in vae.parameters())} parameters, decoded std {decoded.std():.3f}")


def randomise(model: torch.nn.Module, scale: float = 0.05) -> None:
    """Random norms and biases too, so that no mapping error hides behind an init of 1 or 0."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * scale)


def save_scheduler(folder: pathlib.Path, **settings) -> None:
    from diffusers import DDPMScheduler

    DDPMScheduler(num_train_timesteps=1000, **settings).save_pretrained(str(folder / "scheduler"))


def diffusers_unet2d(out: pathlib.Path) -> None:
    from diffusers import UNet2DModel

    torch.manual_seed(2)
    # google/ddpm-cifar10-32's settings, at a small size.
    ddpm = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
                       norm_eps=1e-6, norm_num_groups=8)
    # diffusers' defaults for what is not given, 4 channels a head, scale-shift conditioning.
    wide = UNet2DModel(sample_size=8, in_channels=1, out_channels=2, block_out_channels=(8, 16, 16), layers_per_block=2,
                       down_block_types=("AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D"), attention_head_dim=4,
                       resnet_time_scale_shift="scale_shift", norm_num_groups=4)
    for name, model, scheduler in (("diffusers_ddpm", ddpm, {"beta_schedule": "linear"}),
                                   ("diffusers_ddpm_wide", wide,
                                    {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"})):
        randomise(model)
        model.eval()
        channels = model.config.in_channels
        x = torch.randn(2, channels, 8, 8)
        t = torch.tensor([7.0, 901.0])
        with torch.no_grad():
            output = model(x, t).sample
        model.save_pretrained(str(out / name / "unet"), safe_serialization=True)
        save_scheduler(out / name, **scheduler)
        save_file({"x": x, "t": t, "output": output.contiguous()}, str(out / f"{name}_io.safetensors"))
        print(f"diffusers-unet2d {name}: {sum(p.numel() for p in model.parameters())} parameters, "
              f"output std {output.std():.3f}")


def diffusers_dit(out: pathlib.Path) -> None:
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(3)
    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=32, in_channels=4, out_channels=8,
                                  num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=3)
    randomise(model, 0.08)
    with torch.no_grad():  # one embedder, as in the DiT checkpoints diffusers converted
        first = model.transformer_blocks[0].norm1.emb.state_dict()
        for block in model.transformer_blocks[1:]:
            block.norm1.emb.load_state_dict(first)
    model.eval()
    x = torch.randn(3, 4, 8, 8)
    t = torch.tensor([3.0, 250.5, 999.0])
    y = torch.tensor([0, 2, 3])  # 3: the null class of classifier-free guidance
    with torch.no_grad():
        output = model(x, timestep=t, class_labels=y).sample
    model.save_pretrained(str(out / "diffusers_dit" / "transformer"), safe_serialization=True)
    save_scheduler(out / "diffusers_dit", beta_schedule="linear")
    save_file({"x": x, "t": t, "y": y, "output": output.contiguous()}, str(out / "diffusers_dit_io.safetensors"))
    print(f"diffusers-dit: {sum(p.numel() for p in model.parameters())} parameters, output std {output.std():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dit-repo", type=pathlib.Path, help="a checkout of the DiT repository (for dit-official)")
    parser.add_argument("--only", default="dit-official,diffusers-vae,diffusers-unet2d,diffusers-dit")
    parser.add_argument("--out", default=pathlib.Path(__file__).resolve().parent.parent / "tests/data/interop",
                        type=pathlib.Path)
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    makers = {"dit-official": lambda: dit_official(a.dit_repo, a.out), "diffusers-vae": lambda: diffusers_vae(a.out),
              "diffusers-unet2d": lambda: diffusers_unet2d(a.out), "diffusers-dit": lambda: diffusers_dit(a.out)}
    for name in a.only.split(","):
        if name not in makers:
            parser.error(f"--only: unknown fixture '{name}' (expected some of {', '.join(makers)})")
        if name == "dit-official" and a.dit_repo is None:
            parser.error("--dit-repo is needed for the dit-official fixture")
        makers[name]()


if __name__ == "__main__":
    main()
