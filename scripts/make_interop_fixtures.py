#!/usr/bin/env python3
"""Test data for the importers (tests/unit/weight_import_test.cpp), from the reference code.

dit-official: a small DiT built by models.py of github.com/facebookresearch/DiT (commit
ed81ce2229091fd4ecc9a223645f95cf379d582b; it needs timm), with every weight drawn at random
(the repository's own init zeroes the adaLN and output layers, which would hide mapping
errors), saved as the repository saves state dicts (torch.save), together with an input
(x, t, y) and the reference output of DiT.forward, so that CTest needs neither Python nor a
download. Writes tests/data/interop/dit_official.pt, the same as dit_official.safetensors,
and dit_official_io.safetensors.

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dit-repo", required=True, type=pathlib.Path)
    parser.add_argument("--out", default=pathlib.Path(__file__).resolve().parent.parent / "tests/data/interop",
                        type=pathlib.Path)
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    dit_official(a.dit_repo, a.out)


if __name__ == "__main__":
    main()
