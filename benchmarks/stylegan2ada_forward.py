"""stylegan2ada: the StyleGAN2-ADA forward pass, images/s and FLOP/s, non-fused vs fused modconv,
float32 vs bfloat16, same process.

    python benchmarks/stylegan2ada_forward.py [--quick] [--shapes cond32,cifar10] [--batch 8]
                                              [--matmul 2048] [--repeats 3]

Shapes (random weights, palmup.generators.stylegan2_ada): 'cond32' is the shared reference pickle's
layout (z 64, widths 64/64/64/32, 32x32, 10 classes); 'cifar10' is cifar10.pkl's (z = w = 512,
512 channels at every resolution, 2 mapping layers, 32x32, conv_clamp 256, skip); 'tiny' is for
smoke tests. For each shape, one jitted gen.apply on `batch` latents per variant: non-fused float32
(palmup's default), fused float32 (per-sample kernels, a grouped conv: NVIDIA's inference path)
and non-fused bfloat16; medians of alternating calls, and a float32 matmul for the machine's limit.
FLOPs are XLA's cost analysis of each compiled call (the fused variant counts the kernel
modulation too). bfloat16 error: max |bf16 - f32| over max |f32| of the same images.
Figures: fused seconds over non-fused seconds, non-fused FLOP/s over matmul FLOP/s; no targets
(on accelerators the non-fused form is one dense conv per layer; this CPU says only what it says).
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

import benchlib
from palmup.generators import STAND_INS

SHAPES = {
    "tiny": dict(z_dim=8, c_dim=3, w_dim=8, resolution=8, img_channels=3, channels=(8, 8), mapping_layers=2),
    "cond32": dict(z_dim=64, c_dim=10, w_dim=64, resolution=32, img_channels=3, channels=(64, 64, 64, 32),
                   mapping_layers=2, conv_clamp=256.0),
    "cifar10": {k: v for k, v in STAND_INS["stylegan2_ada_cifar10"][2].items() if k != "dtype"},  # cifar10.pkl's
}
SIZES = dict(shapes="cond32,cifar10", batch=8, matmul=2048, repeats=3)
QUICK = dict(shapes="tiny", batch=2, matmul=256, repeats=2)
VARIANTS = {"nonfused_f32": {}, "fused_f32": {"fused_modconv": True}, "nonfused_bf16": {"dtype": "bfloat16"}}


def measure(shape: dict, batch: int, repeats: int, reference: benchlib.Compiled) -> dict:
  from palmup import generators
  gens = {name: generators.make("stylegan2_ada", shape["z_dim"], {**shape, **v}) for name, v in VARIANTS.items()}
  params = gens["nonfused_f32"].init(jax.random.PRNGKey(0))
  # init leaves noise_strength at 0; give the noise a part in the timed pass as in a trained network
  params = jax.tree_util.tree_map_with_path(
      lambda p, x: jnp.full_like(x, 0.1) if "noise_strength" in jax.tree_util.keystr(p) else x, params)
  z = jax.random.normal(jax.random.PRNGKey(1), (batch, shape["z_dim"]))
  y = jnp.arange(batch) % max(shape["c_dim"], 1)
  calls = {name: benchlib.compile_for(g.apply, params, z, y) for name, g in gens.items()}
  seconds = benchlib.median_seconds({**calls, "matmul": reference}, repeats)
  f32, bf16 = calls["nonfused_f32"](), calls["nonfused_bf16"]()
  details = {name: {"images_per_s": batch / seconds[name], "gflop_per_image": calls[name].flops / batch / 1e9,
                    "gflop_per_s": calls[name].flops / seconds[name] / 1e9} for name in calls}
  details["bf16_max_error_over_scale"] = float(jnp.abs(bf16 - f32).max() / jnp.abs(f32).max())
  details["fused_max_difference_over_scale"] = float(jnp.abs(calls["fused_f32"]() - f32).max() / jnp.abs(f32).max())
  details["matmul_gflop_per_s"] = reference.flops / seconds["matmul"] / 1e9
  return details


def run(shapes: str, batch: int, matmul: int, repeats: int) -> dict:
  reference = benchlib.matmul(matmul)
  figures, details = {}, {"batch": batch}
  for name in shapes.split(","):
    if name not in SHAPES:
      raise SystemExit(f"unknown shape {name!r}; shapes: {', '.join(SHAPES)}")
    d = details[name] = measure(SHAPES[name], batch, repeats, reference)
    figures[f"fused_over_nonfused_seconds[{name}]"] = d["nonfused_f32"]["images_per_s"] / d["fused_f32"]["images_per_s"]
    figures[f"nonfused_over_matmul_flops[{name}]"] = d["nonfused_f32"]["gflop_per_s"] / d["matmul_gflop_per_s"]
  return {"figures": figures, "targets": {}, "details": details}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
