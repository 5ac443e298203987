"""`palmup preflight`: compile the pretraining program for a TPU slice on a machine that has none,
and read what the TPU compiler says of it, before any slice is booked.

    palmup preflight --config configs/preflight.py --workdir runs/preflight \
        --config.run.config=configs/pretrain_cifar10_stylegan2ada.py --config.topology=v5e:4x4,v6e-16

libtpu's compile-only client (`jax.experimental.topologies`) lists the devices of a named slice; the
run config's `init` and `chunk` (palmup.pretrain.jit_pretrain) are lowered for a mesh over them, on
abstract inputs (nothing is allocated, nothing runs), and compiled by the TPU compiler. Each
topology compiles in a child process (the compiler can crash the process, and it needs a larger
stack than Linux's default 8 MB: it overflowed it on a ResNet-50 chunk for v6e), in parallel up to
`config.parallel`. Written to the workdir: preflight.json (every figure below, per topology) and
preflight.md (the table it prints).

Per chip (device: one chip, v4 compiled in megacore mode, see TOPOLOGY_NAMES), from the compiler:
  memory     arguments, outputs, temporaries (CompiledMemoryStats) and their total, arguments
             donated to outputs counted once, against the chip's HBM (CHIPS); fits if the total
             leaves `headroom` (default 10%) of the HBM free;
  cost       FLOPs and bytes accessed of one step: XLA's cost analysis counts a `while` body once,
             so the chunk's figures are one scanned step plus the chunk's epilogue (the metrics'
             means; the judge's exploration metrics when log.judge is set), whatever chunk_steps is;
  roofline   an estimate, not a measurement: step time = max(FLOPs / bf16 peak, bytes / HBM
             bandwidth) from the chips' published figures (CHIPS), and the slice's frames/s =
             num_envs / step time;
  collectives  each kind's count and bytes (its result's size) in one step (the loop body) and in
             the rest of the program, read from the compiled HLO;
  constants  bytes of constants baked into the program (the world is an argument, so only small
             ones should be left);
  compile time on this machine, per program.

A run config whose generator is not on disk compiles with a random-weight generator of the kind
and shape its `stand_in` key names (palmup.generators.STAND_INS); no weights or data are
downloaded. `envs_per_chip` / `batch_per_chip` scale num_envs and replay.batch_size with the
slice (per-chip sizes held fixed), as a pod of another size would run the recipe.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

from palmup import config_checks, configs, workdirs
from palmup.errors import UserError


@dataclasses.dataclass(frozen=True)
class Chip:
  """A TPU generation's per-chip figures, from the Cloud TPU docs (`source`)."""
  hbm_bytes: float
  bf16_flops: float  # peak dense bf16 FLOP/s
  hbm_bytes_per_s: float
  source: str


GIB, GB = 2.0 ** 30, 1e9
CHIPS = {  # the docs write v4's HBM in GiB and the others' in GB (read as 10^9: the smaller)
    "v4": Chip(32 * GIB, 275e12, 1200e9, "https://cloud.google.com/tpu/docs/v4"),
    "v5e": Chip(16 * GB, 197e12, 819e9, "https://cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip(95 * GB, 459e12, 2765e9, "https://cloud.google.com/tpu/docs/v5p-training"),
    "v6e": Chip(32 * GB, 918e12, 1640e9, "https://cloud.google.com/tpu/docs/v6e"),
}
# Cloud TPU accelerator types -> libtpu topology names. v4 and v5p count TensorCores (two per chip),
# v5e (v5litepod-N) and v6e count chips. v4 compiles in megacore mode (one device per chip, both
# TensorCores fused), as JAX runs v4 by default; v5p's compile-only devices are already one per chip.
_SHAPES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
              512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16"}
_SHAPES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
TOPOLOGY_NAMES = {**{f"v4-{2 * c}": f"v4:{s}" for c, s in _SHAPES_3D.items()},
                  **{f"v5p-{2 * c}": f"v5p:{s}" for c, s in _SHAPES_3D.items()},
                  **{f"v5litepod-{c}": f"v5e:{s}" for c, s in _SHAPES_2D.items()},
                  **{f"v6e-{c}": f"v6e:{s}" for c, s in _SHAPES_2D.items()}}
_TOPOLOGY = re.compile(r"^(v4|v5e|v5p|v6e):\d+x\d+(x\d+)?$")
LIBTPU_HINT = "install the TPU compiler: .venv/bin/pip install 'jax[tpu]==0.10.2' (libtpu; no TPU needed)"
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
               "ragged-all-to-all", "collective-broadcast")


def topology_name(name: str) -> str:
  """A libtpu topology name (gen:AxB[xC], e.g. "v5e:4x4") for an accelerator type ("v5litepod-16",
  "v4-32") or a topology name; a UserError naming the valid forms otherwise."""
  name = name.strip()
  if _TOPOLOGY.match(name):
    return name
  if name in TOPOLOGY_NAMES:
    return TOPOLOGY_NAMES[name]
  raise UserError(f"TPU topology {name!r} is not known; valid: a topology name gen:AxB[xC] with gen one of "
                  f"{', '.join(CHIPS)} (e.g. v5e:4x4, v4:2x2x4), or an accelerator type such as v4-32, "
                  "v5litepod-16, v5p-8, v6e-256")


def generation(topology: str) -> str:
  return topology.split(":")[0]


def validate(config):
  config_checks.require(bool(config.run.config.strip()), "run.config", config.run.config, "a pretrain config file")
  config_checks.require(bool(config.topology.strip()), "topology", config.topology, "one or more comma-separated topologies")
  for name in config.topology.split(","):
    try:
      topology_name(name)
    except UserError as e:
      raise config_checks.ConfigError(f"config.topology={config.topology!r} is invalid: {e}") from None
  for key in ("envs_per_chip", "batch_per_chip", "chunk_steps", "members"):
    config_checks.positive(config, key, allow_zero=True)
  config_checks.in_range(config, "headroom", 0, 0.999)
  config_checks.positive(config, "parallel")
  config_checks.positive(config, "timeout")
  for program in config.programs.split(","):
    config_checks.require(program in ("init", "chunk"), "programs", config.programs, "a comma-separated subset of init,chunk")
  run_config(config.run.config, config.run.overrides)  # a bad file or override stops here


def run_config(path: str, overrides: str):
  """The pretrain config at `path` with `overrides` ("--config.key=value ..." as on the command
  line) applied; a UserError names a missing file or a bad override."""
  if not Path(path).is_file():
    raise UserError(f"config.run.config={path!r} is not a file; give a pretrain config such as "
                    "configs/pretrain_cifar10_stylegan2ada.py")
  return configs.load(path, **configs.parse_overrides(shlex.split(overrides)))


# ---------------------------------------------------------------------------- the compile (child)


def sized(config, chips: int, envs_per_chip: int, batch_per_chip: int, chunk_steps: int):
  """The run config at the slice's sizes: num_envs / replay.batch_size per chip times the chips
  (0: the config's own), train.chunk_steps (0: the config's own)."""
  config = configs.copy(config)
  if envs_per_chip:
    config.num_envs = envs_per_chip * chips
  if batch_per_chip:
    config.replay.batch_size = batch_per_chip * chips
  if chunk_steps:
    config.train.chunk_steps = chunk_steps
  return config


def abstract_world(config):
  """The run's World as ShapeDtypeStructs: its generator from disk, or the config's stand-in (a
  generator of the same kind and shape, never initialised: only its shapes are needed)."""
  import jax
  from palmup import generators, pretrain
  from palmup.env import make_env
  if generators.exists(config.generator):
    gen, params = generators.load(config.generator)
    stand_in = None
  elif config.stand_in:
    gen, stand_in = generators.stand_in(config.stand_in), config.stand_in
    params = jax.eval_shape(gen.init, jax.random.PRNGKey(0))
  else:
    raise UserError(f"the run config's generator {config.generator!r} is not on disk and its stand_in is empty; "
                    f"set --config.run.overrides='--config.stand_in=NAME' (one of {', '.join(generators.STAND_INS)})")
  world = pretrain.make_world(config, make_env(gen, params, config.obs_size, config.latent_space))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), world), stand_in


def compile_programs(config, topology: str, programs=("init", "chunk"), members: int = 0) -> dict:
  """Compiles the config's init and chunk for the topology (members > 0: a population of that many
  runs in one program, as `palmup sweep` runs them); -> the figures (see the module docstring)."""
  import jax
  import jax.numpy as jnp
  from jax.experimental import topologies
  from palmup import pretrain, sharding
  options = {"chip_config_name": "megacore"} if generation(topology) == "v4" else {}
  devices = topologies.get_topology_desc(platform="tpu", topology_name=topology, **options).devices
  pretrain.validate(config, len(devices))
  mesh = sharding.make_mesh(devices, members or None)
  world, stand_in = abstract_world(config)
  if members:
    world = world.replace(env_params=jax.tree.map(lambda x: jax.ShapeDtypeStruct((members,) + x.shape, x.dtype),
                                                  world.env_params))
  init, chunk, state_shardings = pretrain.jit_pretrain(config, world, mesh, members or None)
  rep = sharding.replicated(mesh)
  placed = lambda tree, shardings: jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
  world = placed(world, jax.tree.map(lambda _: rep, world))
  key = jax.ShapeDtypeStruct((members, 2) if members else (2,), jnp.uint32, sharding=rep)
  state = placed(jax.eval_shape(init, world, key), state_shardings)
  buffer = state.buffer.experience if state.buffer is not None else {}
  result = {"topology": topology, "devices": len(devices), "device_kind": devices[0].device_kind,
            "hosts": len({d.process_index for d in devices}), "num_envs": config.num_envs,
            "batch_size": config.replay.batch_size, "chunk_steps": config.train.chunk_steps, "members": members,
            "stand_in": stand_in, "world_bytes": sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(world)),
            "replay_bytes_per_chip": sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(buffer)) // len(devices),
            "programs": {}}
  for name, fn, args in (("init", init, (world, key)), ("chunk", chunk, (world, state))):
    if name in programs:
      start = time.perf_counter()
      compiled = fn.lower(*args).compile()
      result["programs"][name] = {"compile_seconds": time.perf_counter() - start, **program_figures(compiled)}
  return result


def program_figures(compiled) -> dict:
  """Per-device memory (bytes), cost (of the program with each while body once), constants and
  collectives of a compiled program."""
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis() or {}
  figures = {"argument_bytes": memory.argument_size_in_bytes, "output_bytes": memory.output_size_in_bytes,
             "alias_bytes": memory.alias_size_in_bytes, "temp_bytes": memory.temp_size_in_bytes,
             "code_bytes": memory.generated_code_size_in_bytes,
             "flops": float(cost.get("flops", 0.0)), "bytes_accessed": float(cost.get("bytes accessed", 0.0))}
  figures["total_bytes"] = (figures["argument_bytes"] + figures["output_bytes"] - figures["alias_bytes"]
                            + figures["temp_bytes"])
  hlo = hlo_summary(compiled.as_text())
  return {**figures, **hlo}


# ---------------------------------------------------------------------------- reading the HLO


_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
                "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1,
                "s4": 0.5, "u4": 0.5}
_ARRAY = re.compile(r"\b([a-z]+[0-9a-z]*)\[([0-9,]*)\]")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.+?)\s+([a-z][a-z0-9\-]*)\((.*)$")
_CALLED = re.compile(r"(?:calls|to_apply|body|condition|branch_computations|called_computations)="
                     r"(\{[^}]*\}|%?[\w.\-]+)")
_BODY = re.compile(r"body=%?([\w.\-]+)")


def type_bytes(text: str) -> int:
  """Bytes of every array in an HLO type ("f32[8,128]{1,0}", or a tuple of them)."""
  total = 0.0
  for dtype, dims in _ARRAY.findall(text):
    if dtype in _DTYPE_BYTES:
      total += _DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
  return int(total)


def _computations(hlo: str) -> dict[str, list[str]]:
  """{computation name: its instruction lines}; the entry computation is also under "ENTRY"."""
  out, name = {}, None
  for line in hlo.splitlines():
    head = re.match(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
    if head and not line.startswith(" "):
      name = head.group(2)
      out[name] = []
      if head.group(1):
        out["ENTRY"] = out[name]
    elif name is not None and line.strip() and line.strip() != "}":
      out[name].append(line)
  return out


def _called(line: str) -> list[str]:
  names = []
  for group in _CALLED.findall(line):
    names += [n.strip().lstrip("%") for n in group.strip("{}").split(",") if n.strip()]
  return names


def _reachable(computations: dict[str, list[str]], roots: list[str]) -> set[str]:
  visited, todo = set(), list(roots)
  while todo:
    name = todo.pop()
    if name in visited or name not in computations:
      continue
    visited.add(name)
    todo += [c for line in computations[name] for c in _called(line)]
  return visited


_CHANNEL = re.compile(r"\bchannel_id=(\d+)")
_NAME = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=")
_OPERAND = re.compile(r"^\s*%?([\w.\-]+)")


def hlo_summary(hlo: str) -> dict:
  """Constants and collectives of an optimised HLO module's text. A collective is counted once per
  channel (its channel_id): the TPU compiler repeats one collective in every async fusion that
  carries it, so one all-gather can appear in dozens of computations. Each is counted where it
  completes (a synchronous op, or an async "-done" through its "-start"'s channel), with its result's
  bytes, split into those of one step (inside the entry computation's while loops, each body once)
  and the rest; "appearances" says how many instructions carried the counted channels."""
  computations = _computations(hlo)
  loops = [m for line in computations.get("ENTRY", []) for m in _BODY.findall(line)]
  in_loop = _reachable(computations, loops)
  start_channels = {}
  for name, lines in computations.items():
    for line in lines:
      match, channel, label = _INSTRUCTION.match(line), _CHANNEL.search(line), _NAME.match(line)
      if match and channel and label and match.group(2).endswith("-start"):
        start_channels[label.group(1)] = channel.group(1)
  constants = 0
  found = {}  # (where, kind, channel or the instruction) -> [bytes, appearances, type]
  for name, lines in computations.items():
    if name == "ENTRY":
      continue
    where = "per_step" if name in in_loop else "outside_loop"
    for line in lines:
      match = _INSTRUCTION.match(line)
      if not match:
        continue
      result_type, op = match.group(1), match.group(2)
      if op == "constant":
        constants += type_bytes(result_type)
      kind = op[:-len("-done")] if op.endswith("-done") else op
      if kind not in COLLECTIVES:
        continue
      channel = _CHANNEL.search(line)
      operand = _OPERAND.match(match.group(3))
      channel = channel.group(1) if channel else start_channels.get(operand.group(1) if operand else "")
      key = (where, kind, channel if channel is not None else f"{name}/{_NAME.match(line).group(1)}")
      size = type_bytes(result_type)
      entry = found.setdefault(key, [0, 0, ""])
      entry[1] += 1
      if size > entry[0]:
        entry[0], entry[2] = size, re.sub(r"\{[^}]*\}", "", result_type)[:120]
  collectives = {"per_step": {}, "outside_loop": {}}
  for (where, kind, _), (size, appearances, text) in found.items():
    entry = collectives[where].setdefault(kind, {"count": 0, "bytes": 0, "appearances": 0, "largest_bytes": 0,
                                                 "largest": ""})
    entry["count"] += 1
    entry["bytes"] += size
    entry["appearances"] += appearances
    if size > entry["largest_bytes"]:
      entry["largest_bytes"], entry["largest"] = size, text
  return {"constant_bytes": constants, "collectives": collectives}


# ---------------------------------------------------------------------------- the estimate


def estimate(result: dict, headroom: float) -> dict:
  """Fit and roofline of a compile result (see the module docstring)."""
  chip = CHIPS[generation(result["topology"])]
  out = {"hbm_bytes": chip.hbm_bytes, "chip_source": chip.source}
  programs = result["programs"]
  peak = max(p["total_bytes"] for p in programs.values())
  out.update(peak_bytes=peak, fits=peak <= (1.0 - headroom) * chip.hbm_bytes)
  if "chunk" in programs:
    step = programs["chunk"]
    compute, memory = step["flops"] / chip.bf16_flops, step["bytes_accessed"] / chip.hbm_bytes_per_s
    seconds = max(compute, memory)
    per_step = step["collectives"]["per_step"]
    out.update(step_flops=step["flops"], step_bytes_accessed=step["bytes_accessed"],
               roofline_step_seconds=seconds, roofline_bound="compute" if compute >= memory else "memory",
               roofline_frames_per_s=result["num_envs"] * max(result.get("members", 0), 1) / seconds if seconds > 0
               else None,
               step_collective_bytes=sum(c["bytes"] for c in per_step.values()))
  return out


# ---------------------------------------------------------------------------- host


_PARENT = "PALMUP_PREFLIGHT_PARENT"  # the pid of the preflight that started a compile process


def _child_main():
  """`python -c 'from palmup.preflight import _child_main; _child_main()' REQUEST RESULT`."""
  _die_with_parent()
  request_path, result_path = sys.argv[1:3]
  request = json.loads(Path(request_path).read_text())
  try:
    import libtpu  # noqa: F401  (the compiler; an ImportError names the fix)
  except ImportError:
    Path(result_path).write_text(json.dumps({"error": f"libtpu is not installed: {LIBTPU_HINT}"}))
    return
  try:
    config = sized(run_config(request["config"], request["overrides"]), request["chips"], *request["sizes"])
    result = compile_programs(config, request["topology"], tuple(request["programs"]), request["members"])
  except UserError as e:
    result = {"error": " ".join(str(e).split())}
  except Exception as e:  # noqa: BLE001 (the compiler's own refusal: quoted as one line)
    result = {"error": _compiler_reason(e)}
  Path(result_path).write_text(json.dumps(result))


def _die_with_parent():
  """On Linux, the compile is killed when the preflight that started it dies (a killed preflight
  leaves no compile running: one holds GBs and cores for minutes)."""
  try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):  # not Linux
    return
  if os.getppid() != int(os.environ.get(_PARENT, os.getppid())):  # the preflight died before prctl
    os._exit(1)


def _compiler_reason(error: Exception) -> str:
  """One line of a compile error: its first line and the line naming the failing instruction."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  picked = lines[:1] + [line for line in lines[1:] if "Ran out of memory" in line or "INTERNAL" in line][:1]
  return f"{type(error).__name__}: {' | '.join(picked)}"[:600]


# Runs "$0" "$@" with a 1 GiB stack (or the hard limit, if lower). Finite on purpose: with an
# unlimited stack glibc gives new threads 2 MiB stacks, below Linux's default 8 MiB, and the TPU
# compiler's worker threads need deep stacks; a finite limit is every new thread's stack size.
STACK_KIB = 1 << 20
LARGE_STACK = ["/bin/sh", "-c", f'h=$(ulimit -Hs); if [ "$h" = unlimited ] || [ "$h" -gt {STACK_KIB} ]; then '
               f'h={STACK_KIB}; fi; ulimit -s "$h"; exec "$0" "$@"']


def compile_in_child(config_path: str, overrides: str, topology: str, sizes: tuple[int, int, int],
                     programs: tuple[str, ...], timeout: float, members: int = 0) -> dict:
  """compile_programs in a fresh process with a large stack (LARGE_STACK); -> its result, or
  {"error": one line} when it fails, crashes or runs out of time."""
  chips = _chip_count(topology)
  with tempfile.TemporaryDirectory(prefix="palmup_preflight_") as tmp:
    request, out = Path(tmp) / "request.json", Path(tmp) / "result.json"
    request.write_text(json.dumps({"config": config_path, "overrides": overrides, "topology": topology,
                                   "chips": chips, "sizes": list(sizes), "programs": list(programs),
                                   "members": members}))
    # compile-only: no TPU backend is started, and libtpu's one-process-per-machine lock is not needed
    env = dict(os.environ, JAX_PLATFORMS="cpu", ALLOW_MULTIPLE_LIBTPU_LOAD="1", **{_PARENT: str(os.getpid())})
    command = [*LARGE_STACK, sys.executable, "-c", "from palmup.preflight import _child_main; _child_main()",
               str(request), str(out)]
    try:
      done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
      return {"topology": topology, "error": f"the compile took longer than timeout={timeout:g} s"}
    if out.exists():
      return {"topology": topology, **json.loads(out.read_text())}
    tail = (done.stderr or "").strip().splitlines()[-1:] or [""]
    how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
    return {"topology": topology, "error": f"the compiler's process died ({how}): {tail[0][:300]}"}


def _chip_count(topology: str) -> int:
  """Chips of a topology name: the product of its dimensions."""
  return math.prod(int(d) for d in topology.split(":")[1].split("x"))


def run(config) -> list[dict]:
  """Every topology of the preflight config compiled (in parallel up to config.parallel) and
  estimated; -> one record per topology, in order."""
  topologies = [topology_name(t) for t in config.topology.split(",")]
  sizes = (config.envs_per_chip, config.batch_per_chip, config.chunk_steps)
  programs = tuple(config.programs.split(","))
  with futures.ThreadPoolExecutor(config.parallel) as pool:
    results = list(pool.map(lambda t: compile_in_child(config.run.config, config.run.overrides, t, sizes, programs,
                                                        config.timeout, config.members), topologies))
  for result in results:
    if "error" not in result:
      result.update(estimate(result, config.headroom))
  return results


def table(results: list[dict], headroom: float) -> str:
  """The markdown table of the results (GB = 10^9 bytes)."""
  rows = ["| topology | chips | envs / batch | compiles | memory per chip, GB (args + out + temp) | "
          f"of HBM | fits ({headroom:.0%} headroom) | GFLOP / step / chip | GB accessed / step | "
          "roofline step (bound) | roofline frames/s | collective MB / step | compile s (init + chunk) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    if "error" in r:
      rows.append(f"| {r['topology']} | | | **no**: {r['error']} | | | | | | | | | |")
      continue
    p = r["programs"]
    peak = max(p.values(), key=lambda x: x["total_bytes"])
    parts = f"{peak['argument_bytes'] / GB:.2f} + {(peak['output_bytes'] - peak['alias_bytes']) / GB:.2f} + " \
            f"{peak['temp_bytes'] / GB:.2f}"
    compile_s = " + ".join(f"{p[n]['compile_seconds']:.0f}" for n in ("init", "chunk") if n in p)
    step = "" if "roofline_step_seconds" not in r else \
        f"{r['roofline_step_seconds'] * 1e3:.1f} ms ({r['roofline_bound']})"
    rows.append(
        f"| {r['topology']} | {r['devices']} | {r['num_envs']} / {r['batch_size']}"
        f"{f' x {members} runs' if (members := r.get('members')) else ''} | yes | "
        f"{r['peak_bytes'] / GB:.2f} ({parts}) | {r['peak_bytes'] / r['hbm_bytes']:.0%} | "
        f"{'yes' if r['fits'] else '**no**'} | {r.get('step_flops', 0) / 1e9:,.0f} | "
        f"{r.get('step_bytes_accessed', 0) / GB:.2f} | {step} | {r.get('roofline_frames_per_s') or 0:,.0f} | "
        f"{r.get('step_collective_bytes', 0) / 1e6:.1f} | {compile_s} |")
  return "\n".join(rows) + "\n"


def main(config, workdir):
  validate(config)
  workdir = workdirs.prepare(workdir, config)
  start = time.perf_counter()
  results = run(config)
  report(config, results, workdir, time.perf_counter() - start)


def report(config, results: list[dict], workdir, seconds: float):
  """Writes preflight.json and preflight.md, prints the table; a UserError quoting the first
  topology's reason if any does not compile or fit."""
  command = shlex.join(["palmup", *sys.argv[1:]]) if sys.argv[0].endswith("palmup") else shlex.join(sys.argv)
  summary = {"command": command, "commit": workdirs.commit(), "run_config": config.run.config,
             "overrides": config.run.overrides, "members": config.members, "headroom": config.headroom,
             "seconds": seconds, "results": results}
  (workdir / "preflight.json").write_text(json.dumps(summary, indent=2) + "\n")
  text = table(results, config.headroom)
  (workdir / "preflight.md").write_text(f"# Preflight of `{config.run.config}` {config.run.overrides}\n\n"
                                        f"Command: `{command}` at commit {summary['commit']}, {seconds / 60:.0f} min.\n\n"
                                        f"{text}")
  print(text, end="")
  failed = [r for r in results if "error" in r or not r["fits"]]
  if failed:
    first = failed[0]
    limit = (1 - config.headroom) * first["hbm_bytes"] if "error" not in first else 0
    why = first.get("error") or (f"needs {first['peak_bytes'] / GB:.2f} GB per chip, over {limit / GB:.2f} GB "
                                 f"({1 - config.headroom:.1%} of the chip's {first['hbm_bytes'] / GB:.1f} GB)")
    raise UserError(f"{config.run.config} does not {'compile' if 'error' in first else 'fit'} on "
                    f"{first['topology']}: {why}")
