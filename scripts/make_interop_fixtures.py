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

usage: make_interop_fixtures.py --dit-repo PATH_TO_DiT_CHECKOUT [--out tests/data/interop]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dit-repo", required=True, type=pathlib.Path)
    parser.add_argument("--out", default=pathlib.Path(__file__).resolve().parent.parent / "tests/data/interop",
                        type=pathlib.Path)
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    dit_official(a.dit_repo, a.out)
    diffusers_vae(a.out)


if __name__ == "__main__":
    main()
