#!/usr/bin/env python3
"""Python interop of diffuse, end to end (the ctest `python_interop`; README, "Interop").

1. diffuse trains a tiny UNet (random 8x8 data, 2 steps) and exports it as safetensors;
2. Python reads the training checkpoint with torch.jit.load and the export with
   safetensors.torch, and checks that the exported tensors are the checkpoint's EMA weights;
3. Python writes the export back with safetensors.torch.save_file (same metadata) and
   diffuse samples from both files: the images must be identical;
4. Python writes a latents file ({latents, labels}), diffuse trains a tiny DiT on it and
   decodes its samples to pictures through an imported diffusers VAE.

Exits 77 (ctest's skip) with a message when torch or safetensors cannot be imported.
usage: python_interop_check.py --diffuse BIN --work DIR
"""
import argparse
import pathlib
import shutil
import subprocess
import sys

try:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
except Exception as error:  # noqa: BLE001 - any import failure means "not available here"
    print(f"skipped: this Python cannot import torch and safetensors ({error})")
    sys.exit(77)


def run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{result.stderr}")


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {message}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--diffuse", required=True)
    parser.add_argument("--work", required=True)
    a = parser.parse_args()
    work = pathlib.Path(a.work)
    shutil.rmtree(work, ignore_errors=True)  # a fresh run each time, not a resumed one
    work.mkdir(parents=True)
    bin_ = a.diffuse

    config = work / "tiny.yaml"
    config.write_text(
        f"name: tiny\nrun_dir: {work / 'run'}\n"
        "data: {type: random, resolution: 8, channels: 1, limit: 16, num_workers: 0}\n"
        "model:\n  arch: unet\n  unet: {base_channels: 16, channel_mult: [1, 2], num_res_blocks: 1, "
        "attention_resolutions: [], num_groups: 8}\n"
        "diffusion: {timesteps: 50, p_uncond: 0.1}\n"
        "train: {steps: 2, batch_size: 4, device: cpu, precision: fp32, log_every: 1, sample_every: 0, ckpt_every: 2}\n")
    run(bin_, "train", "--config", str(config), "--threads", "1")
    checkpoint = work / "run" / "ckpt" / "last.pt"
    exported = work / "model.safetensors"
    run(bin_, "export", "--checkpoint", str(checkpoint), "--out", str(exported))

    # The README's lines: a training checkpoint through torch.jit.load, an export through safetensors.
    archive = torch.jit.load(str(checkpoint), map_location="cpu")
    ema = dict(archive.ema)
    step = archive.step
    weights = load_file(str(exported))
    with safe_open(str(exported), framework="pt") as f:
        metadata = f.metadata()
    check(metadata["format"] == "diffuse-model-1", f"format {metadata.get('format')}")
    check(metadata["weights"] == "ema" and int(metadata["step"]) == step == 2, f"metadata {metadata}")
    check("arch: unet" in metadata["config"], "the config is in the metadata")
    check(set(weights) == set(ema), f"names differ: {sorted(set(weights) ^ set(ema))[:5]}")
    for name, tensor in weights.items():
        check(torch.equal(tensor, ema[name]), f"tensor {name} differs from the checkpoint's EMA weight")

    resaved = work / "resaved.safetensors"
    save_file(weights, str(resaved), metadata=metadata)
    grids = []
    for model, out in ((exported, "from_export"), (resaved, "from_python")):
        run(bin_, "sample", "--checkpoint", str(model), "--steps", "3", "--sampler", "ddim", "--seeds", "0-3",
            "--out", str(work / out), "--device", "cpu", "--threads", "1")
        grids.append((work / out / "grid.png").read_bytes())
    check(grids[0] == grids[1], "samples from the file Python wrote differ from those of diffuse's export")

    latents = work / "latents.safetensors"
    save_file({"latents": torch.randn(16, 4, 4, 4), "labels": torch.randint(0, 3, (16,))}, str(latents))
    dit = work / "dit.yaml"
    dit.write_text(
        f"name: dit\nrun_dir: {work / 'dit_run'}\n"
        f"data: {{type: latents, path: {latents}, num_workers: 0, hflip: false}}\n"
        "model:\n  arch: dit\n  dit: {patch_size: 2, hidden_size: 32, depth: 1, num_heads: 2}\n"
        "diffusion: {timesteps: 50, p_uncond: 0.1}\n"
        "train: {steps: 2, batch_size: 4, device: cpu, precision: fp32, log_every: 1, sample_every: 0, ckpt_every: 2}\n")
    run(bin_, "train", "--config", str(dit), "--threads", "1")
    # Its samples decoded to pictures through a diffusers VAE (the committed random one).
    vae_folder = pathlib.Path(__file__).resolve().parent.parent / "tests/data/interop/diffusers_vae"
    run(bin_, "import", "--from", "diffusers-vae", "--weights", str(vae_folder), "--out", str(work / "vae.safetensors"))
    run(bin_, "sample", "--checkpoint", str(work / "dit_run" / "ckpt" / "last.pt"), "--vae", str(work / "vae.safetensors"),
        "--steps", "2", "--seeds", "0-2", "--out", str(work / "decoded"), "--device", "cpu", "--threads", "1")
    pictures = sorted((work / "decoded").glob("seed*.png"))
    check(len(pictures) == 3, f"3 decoded pictures expected, found {len(pictures)}")
    print(f"ok: {len(weights)} tensors read in Python equal the checkpoint's EMA weights; Python's re-save samples "
          "identically; a DiT trained on latents written by Python samples pictures through an imported VAE")


if __name__ == "__main__":
    main()
