"""`palmup evaluate`: transfer of frozen encoders to real labelled datasets, against random encoders.

    palmup evaluate --config configs/evaluate.py --workdir runs/evaluate --config.encoders=runs/pretrain

For every dataset in config.datasets (built-in: fashion_mnist, mnist5k, digits; or any tfds dataset
prepared in config.data_dir, e.g. cifar10 and cifar100: configs/evaluate_cifar.py) and every encoder
in config.encoders (pretrain workdirs or their `encoder/` directories, comma-separated), plus the
same architecture at config.probe.random_seeds random initialisations and raw pixels (the floors;
pixels: the same resized image, flattened):
  logistic  linear probe, L2 picked on 10% held out (palmup.evaluators.linear_probe)
  ridge     closed-form ridge probe, the cross-check
  k-shot    ridge on k labelled images per class, mean over seeds (palmup.evaluators.few_shot)
  fine-tune encoder unfrozen plus a linear head, when config.fine_tune.enabled
Images are resized to each encoder's input shape. Workdir: evaluate.json (every number, per seed),
results.md (the table, mean +- std over random inits and few-shot seeds).
"""
from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
from etils import epath

from palmup import config_checks, sharding, workdirs
from palmup.data import datasets, transforms
from palmup.evaluators import few_shot, fine_tune, linear_probe
from palmup.learner import load_encoder


def probe_config(**overrides) -> ml_collections.ConfigDict:
  """The probe settings every evaluation shares (pretrain's end-of-run probe and `palmup evaluate`)."""
  c = ml_collections.ConfigDict(dict(
      train_examples=10000,  # training images the probes see (0 = the whole split)
      seed=0, random_seeds=3,
      logistic=dict(l2_grid=(1e-4, 1e-3, 1e-2), steps=200),
      ridge=dict(l2_grid=(1.0, 10.0, 100.0, 1000.0, 10000.0)),
      # few-shot ridge: its L2 chosen per draw by leave-one-out on the shots (evaluators.few_shot)
      few_shot=dict(shots=(1, 5, 10, 25), seeds=5, l2_grid=(0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0))))
  c.update(overrides)
  return c


def validate_probe(config, prefix: str):
  for key in ("train_examples", "random_seeds"):
    config_checks.positive(config, f"{prefix}.{key}", allow_zero=True)
  for key in ("logistic.steps", "few_shot.seeds"):
    config_checks.positive(config, f"{prefix}.{key}")
  for key in ("logistic.l2_grid", "ridge.l2_grid", "few_shot.l2_grid", "few_shot.shots"):
    values = config_checks.get(config, f"{prefix}.{key}")
    config_checks.require(len(values) > 0 and all(v > 0 for v in values), f"{prefix}.{key}", values, "a non-empty list of values > 0")


def load_splits(dataset: str, data_dir=None) -> tuple[datasets.ArrayDataset, datasets.ArrayDataset]:
  """(train, test) of `dataset`, whole, in memory."""
  return tuple(datasets.load(dataset, s, data_dir) for s in ("train", "test"))


def evaluate_encoder(features_fn, params, obs_shape, dataset: str, cfg, data_dir=None, splits=None) -> dict:
  """Every probe of cfg on `dataset` (train subsampled to cfg.train_examples if > 0): the logistic
  probe's fields, plus "ridge" (the ridge probe) and "few_shot" ({k: mean/std/per_seed}).
  `splits`: load_splits(dataset, data_dir) when the caller has it already (CIFAR takes seconds)."""
  train, test = splits or load_splits(dataset, data_dir)
  idx = _train_subset(len(train), cfg)
  train_x = linear_probe.extract_features(features_fn, params, train.images[idx], obs_shape)
  test_x = linear_probe.extract_features(features_fn, params, test.images, obs_shape)
  train_y, k = train.labels[idx], train.num_classes
  result = linear_probe.probe(train_x, train_y, test_x, test.labels, k, tuple(cfg.logistic.l2_grid),
                              cfg.logistic.steps, seed=cfg.seed)
  result["ridge"] = linear_probe.probe(train_x, train_y, test_x, test.labels, k, tuple(cfg.ridge.l2_grid),
                                       seed=cfg.seed, method="ridge")
  result["few_shot"] = few_shot.few_shot(train_x, train_y, test_x, test.labels, k, tuple(cfg.few_shot.shots),
                                         cfg.few_shot.seeds, tuple(cfg.few_shot.l2_grid))
  return result


def pixel_features(params, obs) -> jax.Array:
  """The raw-pixel floor as a features function (learner.features' signature; params unused): uint8 obs
  [B, H, W, C], already resized to the encoder's input by extract_features -> float [B, H*W*C] in [-1, 1]."""
  del params
  return transforms.to_float(obs).reshape(obs.shape[0], -1)


def evaluate_pixels(obs_shape, dataset: str, cfg, data_dir=None, splits=None) -> dict:
  """evaluate_encoder's probes on raw pixels at obs_shape: no encoder, nothing trained."""
  return evaluate_encoder(pixel_features, None, obs_shape, dataset, cfg, data_dir, splits)


def _train_subset(n: int, cfg) -> np.ndarray:
  if 0 < cfg.train_examples < n:
    return np.random.default_rng(cfg.seed).choice(n, cfg.train_examples, replace=False)
  return np.arange(n)


def random_params(learner, obs_shape, seed: int):
  """The learner's parameters at random initialisation `seed` (the floors use seeds 1000, 1001, ...)."""
  return learner.init(jax.random.PRNGKey(seed), obs_shape).params


def compare_with_random(cfg, dataset: str, learner, params, obs_shape, data_dir=None,
                        random_seeds: int | None = None, pixels: bool = True, splits=None) -> dict:
  """The probes on a trained learner's encoder, on the same encoder at `random_seeds` (default
  cfg.random_seeds) random initialisations, seeds 1000, 1001, ... (the floor varies by about a point),
  and, when `pixels`, on raw pixels at obs_shape ("pixels"; None otherwise). The dataset is loaded
  once (or given as `splits`, as in evaluate_encoder)."""
  n = cfg.random_seeds if random_seeds is None else random_seeds
  splits = splits or load_splits(dataset, data_dir)
  floors = [evaluate_encoder(learner.features, random_params(learner, obs_shape, 1000 + s), obs_shape, dataset,
                             cfg, data_dir, splits) for s in range(n)]
  accs = [f["test_accuracy"] for f in floors]
  return {"dataset": dataset, "train_examples": cfg.train_examples,
          "pretrained": evaluate_encoder(learner.features, params, obs_shape, dataset, cfg, data_dir, splits),
          "random_init": floors, "random_init_mean": float(np.mean(accs)) if accs else None,
          "random_init_std": float(np.std(accs)) if accs else None,
          "pixels": evaluate_pixels(obs_shape, dataset, cfg, data_dir, splits) if pixels else None}


def scores(result: dict) -> dict[str, float]:
  """The reported top-1 of one evaluate_encoder result: {"logistic", "ridge", "<k>-shot" (mean over draws)}."""
  out = {"logistic": result["test_accuracy"]}
  if "ridge" in result:  # probe.json of older runs has only the logistic probe
    out["ridge"] = result["ridge"]["test_accuracy"]
  out.update({f"{k}-shot": shot["mean"] for k, shot in result.get("few_shot", {}).items()})
  return out


def pixel_verdict(name: str, encoder: dict[str, float], pixels: dict[str, float]) -> str:
  """A plain sentence naming the probes (of `scores` form) on which `name` does not beat raw pixels;
  "" when it beats them on every probe both have."""
  worse = [f"{p} ({100 * v:.1f}% vs {100 * pixels[p]:.1f}%)" for p, v in encoder.items()
           if p in pixels and v <= pixels[p]]
  if not worse:
    return ""
  return (f"{name} does not beat raw pixels on {', '.join(worse)}: on "
          f"{'this probe' if len(worse) == 1 else 'these probes'} the representation has learned nothing useful "
          "beyond pixels.")


def summary(result: dict) -> str:
  """compare_with_random's result in a line: pretrained vs random init vs raw pixels, logistic and
  few-shot; then a sentence when the encoder does not beat raw pixels."""
  n, pre, floors, pix = len(result["random_init"]), result["pretrained"], result["random_init"], result.get("pixels")
  line = f"linear probe on {result['dataset']} (top-1, test split): pretrained {100 * pre['test_accuracy']:.1f}%"
  if n:
    line += (f" vs random encoder {100 * result['random_init_mean']:.1f} +- "
             f"{100 * result['random_init_std']:.1f}% ({n} inits)")
  if pix:  # probe.json of runs before the pixel floor existed has none
    line += f" vs raw pixels {100 * pix['test_accuracy']:.1f}%"
  for k, shot in pre.get("few_shot", {}).items():  # probe.json of runs before few-shot existed has none
    line += f"; {k}-shot {100 * shot['mean']:.1f}%"
    if n:
      line += f" vs {100 * np.mean([f['few_shot'][k]['mean'] for f in floors]):.1f}%"
    if pix and k in pix["few_shot"]:
      line += f" vs pixels {100 * pix['few_shot'][k]['mean']:.1f}%"
  verdict = pixel_verdict("the pretrained encoder", scores(pre), scores(pix)) if pix else ""
  return line + (f"\n{verdict}" if verdict else "")


# ---------------------------------------------------------------------------------------- command


def encoder_dir(path: str) -> epath.Path:
  """A pretrain workdir or its encoder/ directory -> the directory holding learner.json."""
  path = workdirs.path(path)
  for candidate in (path, path / "encoder"):
    if (candidate / "learner.json").exists():
      return candidate
  raise config_checks.ConfigError(f"config.encoders: {str(path)!r} is neither a palmup encoder directory nor a pretrain "
                       "workdir holding encoder/ (both have learner.json, written by `palmup pretrain`)")


def validate(config):
  config_checks.require(bool(config.encoders.strip()), "encoders", config.encoders,
             "comma-separated pretrain workdirs or encoder directories")
  names = [d.strip() for d in config.datasets.split(",") if d.strip()]
  config_checks.require(bool(names), "datasets", config.datasets, f"comma-separated names: built-in {', '.join(datasets.BUILTIN)} "
             "or tfds datasets prepared in config.data_dir")
  validate_probe(config, "probe")
  if config.fine_tune.enabled:
    for key in ("fine_tune.steps", "fine_tune.batch_size", "fine_tune.lr"):
      config_checks.positive(config, key)


def _row(name: str, results: list[dict], fine_tuned: list[float]) -> dict:
  """Mean and std over results (one per random init, or a single encoder) of each reported number."""
  per_result = [scores(r) for r in results]
  cols = {c: [s[c] for s in per_result] for c in per_result[0]}
  if fine_tuned:
    cols["fine-tune"] = fine_tuned
  return {"encoder": name, **{c: (float(np.mean(v)), float(np.std(v))) for c, v in cols.items()}}


def table(rows_by_dataset: dict[str, list[dict]]) -> str:
  """Markdown table of top-1 % (mean +- std); few-shot cells average their seeds first; "-" where a
  row has no such number (raw pixels are not fine-tuned)."""
  cols = [c for c in next(iter(rows_by_dataset.values()))[0] if c != "encoder"]
  lines = ["| dataset | encoder | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
  for dataset, rows in rows_by_dataset.items():
    for row in rows:
      cells = ["-" if c not in row else f"{100 * row[c][0]:.1f} +- {100 * row[c][1]:.1f}" if row[c][1]
               else f"{100 * row[c][0]:.1f}" for c in cols]
      lines.append(f"| {dataset} | {row['encoder']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(config, workdir):
  with sharding.together("loading the encoders and datasets"):  # a file missing on one host stops all
    validate(config)
    encoders = {}
    for path in (p.strip() for p in config.encoders.split(",") if p.strip()):
      d = encoder_dir(path)
      encoders[d.parent.name if d.name == "encoder" else d.name] = load_encoder(d)
    splits = {name: load_splits(name, config.data_dir)
              for name in (d.strip() for d in config.datasets.split(",") if d.strip())}
    workdir = workdirs.create(workdir)
  primary = sharding.is_primary()  # every process computes every probe (host-local, no collective); one writes
  if primary:
    workdirs.write_config(workdir, config)
  cfg, ft = config.probe, config.fine_tune
  results, rows, verdicts = {}, {}, []
  for dataset, (train, test) in splits.items():
    idx = _train_subset(len(train), cfg)

    def tuned(learner, params, obs_shape):
      if not ft.enabled:
        return []
      return [fine_tune.fine_tune(learner, params, obs_shape, train.images[idx], train.labels[idx], test.images,
                                  test.labels, train.num_classes, ft, cfg.seed)["test_accuracy"]]

    results[dataset], rows[dataset], archs, pixels = {}, [], set(), {}
    one_shape = len({tuple(shape) for _, _, shape in encoders.values()}) == 1
    for name, (learner, params, obs_shape) in encoders.items():
      arch = json.dumps([learner.config.encoder.to_dict(), list(obs_shape)], sort_keys=True)
      shape = tuple(obs_shape)
      result = compare_with_random(cfg, dataset, learner, params, obs_shape, config.data_dir,
                                   0 if arch in archs else cfg.random_seeds, pixels=shape not in pixels,
                                   splits=(train, test))
      archs.add(arch)
      result["fine_tune"] = tuned(learner, params, obs_shape)
      rows[dataset].append(_row(name, [result["pretrained"]], result["fine_tune"]))
      if result["random_init"]:
        result["random_init_fine_tune"] = tuned(learner, random_params(learner, obs_shape, 1000), obs_shape)
        floor = "random init" if len(encoders) == 1 else f"random init ({name}'s encoder)"
        rows[dataset].append(_row(f"{floor}, {len(result['random_init'])} inits", result["random_init"],
                                  result["random_init_fine_tune"]))
      if result["pixels"]:  # once per input shape
        pixels[shape] = result["pixels"]
        rows[dataset].append(_row("raw pixels" if one_shape else f"raw pixels ({'x'.join(map(str, shape))})",
                                  [result["pixels"]], []))
      verdict = pixel_verdict(f"{name} on {dataset}", scores(result["pretrained"]), scores(pixels[shape]))
      if verdict:
        verdicts.append(verdict)
      results[dataset][name] = result
    if primary:
      print(table({dataset: rows[dataset]}), flush=True)
  if not primary:
    return
  (workdir / "evaluate.json").write_text(json.dumps(results, indent=2) + "\n")
  floors = "\n\n".join(verdicts) if verdicts else "Every encoder beats raw pixels on every probe."
  (workdir / "results.md").write_text(
      f"# palmup evaluate\n\nTop-1 % on the test split; probes see {cfg.train_examples or 'all'} training images "
      f"(k-shot: k per class, mean over {cfg.few_shot.seeds} draws). Encoders: {config.encoders}. Raw pixels: "
      f"the same resized images, flattened, as features.\n\n" + table(rows) + f"\n{floors}\n")
  if verdicts:
    print(floors)
  print(f"wrote {workdir / 'results.md'}")
