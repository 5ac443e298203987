"""Palm pretraining: play in a frozen generator's latent space, learn a representation, all on device.

    palmup pretrain --config configs/pretrain_fashion_mnist.py --workdir runs/pretrain

`make_pretrain(config, mesh)` returns pure `init(world, key)` and `chunk(world, state)`; `chunk` is one
`lax.scan` over `train.chunk_steps` fused steps, jitted once with data-parallel shardings
(palmup.sharding). One step (its parts, as functions: `step_parts`):

    act (APT actor on detached features | gradient explorer's actor | novelty planner | uniform random)
    ->  env step (vmapped)  ->  replay add (o_t, y_t, a_t, first_t)  ->  replay sample (B sequences of L frames)
    ->  learner update (NT-Xent on (o_0, o_offset), episode crossings masked)
    ->  agent update (APT: SAC or DDPG on APT rewards of the same sequences, features detached;
        gradient: the actor's step along the particle reward's gradient through the world)

explorer = "gradient" (palmup.gradient_explorer) trains an actor by the analytic gradient of APT's
particle reward of the next frame, through the transition, the generator and the encoder's input.

explorer = "novelty" acts by one step of lookahead through the known world (palmup.planner): each
env takes, of planner.candidates uniform actions, the one whose simulated next frame is farthest
from the envs' current frames in the learner's features. No agent, no agent update.

explorer = "static" is the GenRep-style baseline on the same loop: no env and no replay; each step
decodes B i.i.d. (z ~ N(0, I), y ~ U{classes}) at noise_scale and contrasts two views of each:
  static_views = "single": two augmentations of G(z, y) (GenRep's "Tx only"; learner.augment "only");
  static_views = "latent": G(z, y) and its latent neighbour G(z + static_sigma * n, y), n a standard
                 normal truncated at +-2 (GenRep's method: ali-design/GenRep), raw (learner.augment
                 "none") or each augmented ("add", as GenRep trains). In W (latent_space = "w") z is
                 perturbed before the mapping.
With static_source = a dataset name (e.g. "fashion_mnist") it draws B real training images instead:
SimCLR on the real data, the upper reference for what generated data could give. The dataset is
held on device, resized to the observation shape (fine for the built-in datasets; a large one
would need an input pipeline).

The host side (palmup.pretrain_job: the run loop, resume, pictures, the end-of-run probe) only calls
chunks, logs, writes pictures and checkpoints. Workdir:
  config.json, metrics.jsonl, tensorboard/   what was run and what it measured (one row per chunk)
  checkpoints/                                orbax, everything (networks, optimisers, replay, env
                                              states, RNG, running statistics); resumed on restart
  strips/chunk_*.png                          recent trajectories and sampled positive pairs
  encoder/                                    the final encoder (palmup.learner.load_encoder)
  probe.json                                  probes on real data vs random encoders (palmup.evaluate)
"""
from __future__ import annotations

import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from palmup import apt, config_checks, generators, sharding
from palmup.data import datasets, transforms
from palmup.errors import UserError
from palmup.env import LATENT_SPACES, EnvParams, EnvState, LatentEnv, make_env, params_from_config
from palmup.evaluators import exploration
from palmup.explorer import ActorCritic, AgentState, action_stats
from palmup.gradient_explorer import GradientActorState, GradientExplorer
from palmup.learner import AUGMENT_MODES, DTYPES, Learner, LearnerState, contrastive_views, view
from palmup.nn import conv
from palmup.nn.encoders import ENCODERS
from palmup.planner import NoveltyPlanner
from palmup.replay import STORAGES, Replay

EXPLORERS = ("apt", "gradient", "novelty", "random", "static")
STATIC_VIEWS = {"single": ("only",), "latent": ("none", "add")}  # explorer=static: views -> valid learner.augment
APT_REFERENCES = ("batch", "population")  # apt.reference: whose frames a frame's kNN are among
NSTEP_REWARDS = ("sum", "first")  # apt.nstep_reward: which frames' rewards make the n-step reward
AGENT_ALGOS = ("ddpg", "sac")  # agent.algo: the actor-critic behind APT (palmup.explorer)
# agent.observe: what APT's actor and critic see of a frame: the learner's detached features (the
# paper), the env's Markov state (LatentEnv.markov_state: latent and class), or both concatenated
AGENT_OBSERVES = ("features", "latent", "both")


@flax.struct.dataclass
class PretrainState:
  """Everything a run carries between steps (and checkpoints). env_state/obs/buffer are None for
  the static baseline; agent is the learned explorer's state (APT's AgentState, the gradient
  explorer's GradientActorState), None for the others."""
  step: jax.Array
  key: jax.Array
  learner: LearnerState
  agent: AgentState | GradientActorState | None
  env_state: EnvState | None
  obs: jax.Array | None
  buffer: object


def validate(config, device_count: int | None = None):
  """Checks every value the run uses; raises ConfigError naming the key, the value, what is valid.
  device_count: the devices the run's mesh will have (None: this process's jax.device_count())."""
  config_checks.one_of(config, "explorer", EXPLORERS)
  config_checks.one_of(config, "stand_in", ("", *generators.STAND_INS))
  config_checks.one_of(config, "replay.storage", STORAGES)
  config_checks.one_of(config, "apt.reference", APT_REFERENCES)
  config_checks.one_of(config, "apt.nstep_reward", NSTEP_REWARDS)
  config_checks.one_of(config, "agent.algo", AGENT_ALGOS)
  config_checks.one_of(config, "agent.observe", AGENT_OBSERVES)
  config_checks.positive(config, "agent.init_temperature")
  config_checks.one_of(config, "learner.augment", AUGMENT_MODES)
  config_checks.one_of(config, "learner.encoder.name", ENCODERS)
  config_checks.one_of(config, "learner.dtype", DTYPES)
  if config.learner.encoder.name == "conv":
    config_checks.one_of(config, "learner.encoder.conv_grad", conv.RULES)
  if config.explorer == "static":
    config_checks.one_of(config, "static_views", tuple(STATIC_VIEWS))
    config_checks.positive(config, "static_sigma")
    views = config.static_views
    valid = STATIC_VIEWS[views]
    config_checks.require(config.learner.augment in valid, "learner.augment", config.learner.augment,
               f"one of {', '.join(map(repr, valid))} when explorer='static' and static_views={views!r}")
    if views == "latent":
      config_checks.require(config.static_source == "generator", "static_source", config.static_source,
                 "'generator' when static_views='latent' (real images have no latent neighbour)")
  else:
    config_checks.require(config.static_source == "generator", "static_source", config.static_source,
               f"'generator' when explorer={config.explorer!r} (a dataset source needs explorer='static')")
  for key in ("num_envs", "replay.batch_size", "replay.capacity", "learner.pair_offset", "agent.nstep",
              "train.steps", "train.chunk_steps", "train.checkpoint_every", "train.keep_checkpoints", "apt.k",
              "learner.temperature",
              "learner.lr", "agent.lr", "obs_size"):
    config_checks.positive(config, key)
  config_checks.one_of(config, "train.restart", (False, True))
  config_checks.one_of(config, "latent_space", LATENT_SPACES)
  config_checks.in_range(config, "agent.discount", 0, 1)
  config_checks.in_range(config, "agent.tau", 0, 1)
  config_checks.require(config.apt.k <= config.replay.batch_size, "apt.k", config.apt.k,
             f"<= replay.batch_size={config.replay.batch_size} (neighbours come from the batch)")
  config_checks.require(config.apt.k >= 2, "apt.k", config.apt.k,
             ">= 2 (a frame's nearest neighbour is itself, at distance 0: with k = 1 every reward is 0)")
  config_checks.positive(config, "log.stats_envs")
  stats_envs = min(config.log.stats_envs, config.num_envs)
  config_checks.require(config.log.entropy_k < stats_envs, "log.entropy_k", config.log.entropy_k,
             f"< min(log.stats_envs, num_envs) = {stats_envs} (the envs whose latents it reads)")
  config_checks.require(config.apt.k <= stats_envs, "apt.k", config.apt.k,
             f"<= min(log.stats_envs, num_envs) = {stats_envs} (the logged APT objective, and with "
             "apt.reference='population' the reward, take neighbours among the envs)")
  config_checks.positive(config, "learner.negatives", allow_zero=True)
  config_checks.require(config.replay.batch_size % max(config.learner.negatives, 1) == 0, "learner.negatives",
                        config.learner.negatives, f"0 or a divisor of replay.batch_size={config.replay.batch_size}")
  config_checks.positive(config, "apt.scope", allow_zero=True)
  if config.apt.scope:
    points = config.num_envs if config.apt.reference == "population" else config.replay.batch_size
    what = "num_envs" if config.apt.reference == "population" else "replay.batch_size"
    config_checks.require(points % config.apt.scope == 0 and config.apt.scope >= config.apt.k, "apt.scope",
                          config.apt.scope, f"0, or a divisor of {what}={points} that is >= apt.k={config.apt.k}")
  config_checks.positive(config, "agent.seed_steps", allow_zero=True)
  config_checks.positive(config, "agent.updates_per_step")
  if config.explorer == "gradient":
    config_checks.one_of(config, "gradient.observe", AGENT_OBSERVES)
    config_checks.one_of(config, "gradient.reference", APT_REFERENCES)
    config_checks.one_of(config, "gradient.center_actions", (False, True))
    for key in ("gradient.lr", "gradient.hidden", "gradient.feature_dim"):
      config_checks.positive(config, key)
  config_checks.one_of(config, "agent.standardize_reward", (False, True))
  config_checks.positive(config, "planner.candidates")
  config_checks.require(1 <= config.planner.k <= config.num_envs, "planner.k", config.planner.k,
             f"in [1, num_envs={config.num_envs}] (neighbours among the envs' current frames)")
  config_checks.positive(config, "log.judge_reference")
  if config.log.judge:
    try:
      exploration.resolve(config.log.judge)
    except UserError as e:
      raise config_checks.ConfigError(f"config.log.judge={config.log.judge!r} is invalid: {e}; or '' for none") from None
  length = sequence_length(config)
  config_checks.require(config.replay.capacity >= length + 1, "replay.capacity", config.replay.capacity,
             f">= {length + 1} (sequences of {length} frames plus the write head)")
  config_checks.require(config.train.warmup_steps >= length, "train.warmup_steps", config.train.warmup_steps,
             f">= the sequence length {length} (the buffer must hold a full sequence before sampling)")
  n = jax.device_count() if device_count is None else device_count
  for key in ("num_envs", "replay.batch_size"):
    value = config_checks.get(config, key)
    config_checks.require(value % n == 0, key, value, f"a multiple of the device count {n} (data parallelism)")
  params_from_config(config)
  if config.eval.enabled:
    from palmup.evaluate import validate_probe
    validate_probe(config, "eval")


def sequence_length(config) -> int:
  """Frames per replayed sequence: enough for the pair offset and the agent's n-step return."""
  return max(config.learner.pair_offset, config.agent.nstep if config.explorer == "apt" else 1) + 1


def real_source(config, obs_shape) -> datasets.ArrayDataset | None:
  """The static baseline's real training images, resized to obs_shape (None: the generator)."""
  if config.explorer != "static" or config.static_source == "generator":
    return None
  return _prepared_train_split(config.static_source, tuple(obs_shape))


@functools.lru_cache(maxsize=2)
def _prepared_train_split(name: str, obs_shape) -> datasets.ArrayDataset:
  ds = datasets.load(name, "train")
  return dataclasses.replace(ds, images=transforms.prepare_all(ds.images, obs_shape))


@functools.lru_cache(maxsize=2)
def _judge(name: str, per_class: int) -> tuple[exploration.Judge, exploration.Reference]:
  judge = exploration.load(name)
  return judge, exploration.reference(judge, per_class)


def judge_for(config, env: LatentEnv) -> tuple[exploration.Judge, exploration.Reference] | None:
  """(judge, its real reference) for the play explorers when config.log.judge names one, else None."""
  if not config.log.judge or config.explorer == "static":
    return None
  judge, ref = _judge(config.log.judge, config.log.judge_reference)
  config_checks.require(judge.num_classes == env.num_classes, "log.judge", config.log.judge,
             f"a judge of the generator's {env.num_classes} classes (this one has {judge.num_classes}), "
             "or '' for none")
  return judge, ref


@flax.struct.dataclass
class World:
  """Everything the compiled program reads and never changes, passed to it as one argument (a
  pytree, replicated over the mesh), so that none of it is baked into the program as a constant:

  env            the LatentEnv: the frozen generator's parameters are its leaves;
  env_params     the dynamics (EnvParams; traced, so runs that differ only in them share a program);
  judge, reference   the exploration judge and its real reference in judge space (log.judge), or None;
  source_images  uint8 [N, H, W, C], source_labels int32 [N]: a real dataset's training split at the
                 observation shape (explorer = "static" with static_source a dataset), or None;
  source_classes its number of classes (static; 0 without a source).
  """
  env: LatentEnv
  env_params: EnvParams
  judge: exploration.Judge | None = None
  reference: exploration.Reference | None = None
  source_images: jax.Array | None = None
  source_labels: jax.Array | None = None
  source_classes: int = flax.struct.field(pytree_node=False, default=0)

  @property
  def num_classes(self) -> int:
    """The learner's classes: the real source's, else the generator's."""
    return self.source_classes or self.env.num_classes


def make_world(config, env: LatentEnv | None = None) -> World:
  """The world of a validated config, on the host: its generator (loaded from config.generator
  unless `env` is given), dynamics (config.env), judge (config.log.judge) and real source
  (config.static_source)."""
  if env is None:
    env = make_env(*generators.load(config.generator), config.obs_size, config.latent_space)
  judge, reference = judge_for(config, env) or (None, None)
  # the dynamics as arrays (float32, int, bool), as the program sees them
  env_params = jax.tree.map(lambda v: np.asarray(v, np.float32 if isinstance(v, float) else None),
                            params_from_config(config))
  source = real_source(config, env.observation_shape)
  if source is None:
    return World(env, env_params, judge, reference)
  return World(env, env_params, judge, reference, source.images, source.labels, source.num_classes)


def build(config, world: World, platform: str | None = None):
  """(learner, agent or None, replay or None) for a validated config and its world, compiled for
  the backend `platform` (None: the default backend)."""
  env = world.env
  learner = Learner(config.learner, world.num_classes, platform)
  agent = ActorCritic(config.agent, config.apt, env.latent_dim) if config.explorer == "apt" else None
  replay = None
  if config.explorer != "static":
    keep_latents = agent is not None and config.agent.observe != "features"
    replay = Replay(env, config.num_envs, config.replay.capacity, config.replay.batch_size,
                    sequence_length(config), config.replay.storage, keep_latents)
  return learner, agent, replay


def make_pretrain(config, mesh=None):
  """-> (init(world, key) -> PretrainState, chunk(world, state) -> (state, metrics, strips)), both
  pure; `world` is the run's World (make_world), an argument of both, never a constant.

  metrics: scalars averaged over the chunk's steps, plus (with a judge, `judge_for`) the exploration
  metrics of all the frames the chunk visited (palmup.evaluators.exploration). strips: {"trajectory": uint8 [T, S, H, W, C]
  (the first S envs at every step), "pairs": uint8 [2, P, H, W, C] (the last step's positive pairs)}.
  """
  def init(world: World, key) -> PretrainState:
    return Loop.make(config, world, mesh).init(key)

  def chunk(world: World, state: PretrainState):
    return Loop.make(config, world, mesh).chunk(state)
  return init, chunk


def step_parts(config, world: World, mesh=None) -> dict:
  """The pure functions one step of the loop composes (explorer apt, gradient, novelty or random), as `chunk`
  calls them, so each can be jitted and timed alone (benchmarks/pretrain_loop.py); they close over
  `world` (constants of a part's program, which is fine for timing a part). act, env_stats and add
  each encode the envs' current frames themselves (Loop.current_features), which a loop step does
  once for all three:

    act(state, key) -> actions [num_envs, d]: the APT actor on detached features, or U(-1, 1)
    env_stats(state, action) -> the envs' statistics and the actions' diagnostics (logged)
    add(state, action) -> the buffer with every env's (o_t, y_t, a_t, first_t) added
    env_step(state, action, key) -> (env_state, obs) after one step of every env
    sample(buffer, key) -> Sequences [batch, L, ...], split over the mesh along the batch
    learn(learner_state, seq, key) -> (learner_state, metrics, pairs uint8 [2, P, H, W, C], encoded)
    agent_update(agent_state, params, seq, key, step, encoded) -> (agent_state, metrics)   (apt only)
    gradient_play(state, key) -> (action, env_state, obs, agent_state, metrics): the gradient
        explorer's act, env step and actor update in one pass, in place of act and env_step
    visits(state) -> the judge's outputs on the envs' frames, with labels and latents (with a judge)

  `encoded` is {frame index: detached features [B, D]} of the sampled frames the learner has
  encoded at the parameters the agent uses (frames 0 and pair_offset; their augmented views when
  learner.augment = "add"): the agent update encodes only the other frames it needs (augmented
  too, then).
  """
  loop = Loop.make(config, world, mesh)
  if loop.replay is None:
    raise ValueError("explorer='static' has no play step (no env, no replay)")
  with_features = lambda part: lambda state, *args: part(state, *args, loop.current_features(state))
  parts = dict(act=with_features(loop.act), env_stats=with_features(loop.play_stats), add=with_features(loop.add),
               env_step=loop.env_step, sample=loop.sample, learn=loop.learn)
  if loop.agent is not None:
    parts["agent_update"] = loop.agent_update
  if loop.gradient is not None:  # acts and steps the envs itself
    del parts["act"], parts["env_step"]
    parts["gradient_play"] = with_features(loop.gradient_play)
  if world.judge is not None:
    parts["visits"] = loop.visits
  return parts


@dataclasses.dataclass(frozen=True, eq=False)
class Loop:
  """One pretraining step, part by part, and the chunk that scans it. Built by `Loop.make` from the
  config and the world (inside a traced function: from the traced World); every method is pure (jit
  them). A play step (`play_step`) reads top to bottom:

    features of the envs' current frames (once) -> act -> statistics -> add to the replay and step
    the envs -> sample sequences -> learner update -> agent update (APT) on the learner's features.

  The static baseline (explorer = "static") has no env or replay: `static_step` trains on i.i.d.
  samples of the generator (or a dataset's images) with augmented views.
  """
  config: object
  world: World
  mesh: object
  learner: Learner
  agent: ActorCritic | None
  replay: Replay | None
  planner: NoveltyPlanner | None
  gradient: GradientExplorer | None

  @classmethod
  def make(cls, config, world: World, mesh=None) -> "Loop":
    mesh = mesh or sharding.make_mesh()
    learner, agent, replay = build(config, world, mesh.devices.flat[0].platform)
    planner = NoveltyPlanner(world.env, world.env_params, config.planner) if config.explorer == "novelty" else None
    gradient = (GradientExplorer(config.gradient, config.apt, world.env.latent_dim, config.replay.batch_size)
                if config.explorer == "gradient" else None)
    return cls(config, world, mesh, learner, agent, replay, planner, gradient)

  @property
  def actor(self) -> ActorCritic | GradientExplorer | None:
    """The learned explorer whose state is PretrainState.agent: APT's agent or the gradient explorer."""
    return self.agent or self.gradient

  @property
  def env(self) -> LatentEnv:
    return self.world.env

  @property
  def env_params(self) -> EnvParams:
    return self.world.env_params

  @property
  def num_envs(self) -> int:
    return self.config.num_envs

  @property
  def batch(self) -> int:
    return self.config.replay.batch_size

  # ------------------------------------------------------------------------------ the step's parts

  def random_actions(self, key):
    return jax.random.uniform(key, (self.num_envs, self.env.latent_dim), minval=-1.0, maxval=1.0)

  def stats_rows(self, x):
    """S = min(log.stats_envs, n) rows of x [n, ...], every (n // S)-th: the rows the O(n^2)
    statistics (kNN entropy, APT objective) read, so that they cost O(S^2) at any num_envs."""
    n = x.shape[0]
    s = min(self.config.log.stats_envs, n)
    return x[::n // s][:s]

  def env_stats(self, z, labels):
    return {"latent_norm": jnp.mean(jnp.linalg.norm(z, axis=-1)),
            "knn_entropy": apt.knn_entropy(self.stats_rows(z), self.config.log.entropy_k),
            "class_coverage": coverage(labels, self.env.num_classes)}

  def current_features(self, state: PretrainState):
    """The learner's detached features [num_envs, D] of the envs' current frames."""
    return self.learner.features(state.learner.params, state.obs)

  def observed(self, features, z, labels):
    """What the learned explorer's networks see (agent.observe for APT's actor and critic,
    gradient.observe for the gradient explorer's actor) of frames with learner features [..., D],
    latents z [..., d] and labels [...]: the features, env.markov_state(z, labels), or both."""
    observe = (self.config.gradient if self.gradient is not None else self.config.agent).observe
    if observe == "features":
      return features
    markov = self.env.markov_state(z, labels)
    return markov if observe == "latent" else jnp.concatenate([features, markov], axis=-1)

  def play_stats(self, state: PretrainState, action, features):
    """The envs' statistics, the taken actions' collapse diagnostics (action_*) and the APT objective
    (mean particle reward of the envs' current frames in the learner's feature space, no running
    mean); for APT also the diagnostics of the actor's noiseless actions (policy_*).
    features: current_features(state)."""
    stats = self.env_stats(state.env_state.z, state.env_state.label)
    stats.update({f"action_{k}": v for k, v in action_stats(action).items()})
    rows = self.stats_rows(features)
    stats["apt_objective"] = jnp.mean(apt.particle_reward(rows, self.config.apt.k, average=self.config.apt.average))
    if self.actor is not None:
      policy = self.actor.policy(state.agent, self.observed(features, state.env_state.z, state.env_state.label))
      stats.update({f"policy_{k}": v for k, v in action_stats(policy).items()})
    return stats

  def visits(self, state: PretrainState):
    """What the chunk's exploration metrics need of the envs' current frames (None: no judge)."""
    if self.world.judge is None:
      return None
    logits, features = self.world.judge.apply(state.obs)
    return logits, features, state.env_state.label, state.env_state.z

  def act(self, state: PretrainState, key, features):
    """Actions [num_envs, d] of the explorer; features: current_features(state) (unused by random)."""
    if self.planner is None and self.actor is None:
      return self.random_actions(key)
    if self.planner is not None:
      encode = functools.partial(self.learner.features, state.learner.params)
      return self.planner.act(key, state.env_state, encode, features)
    return self.actor.act(state.agent, self.observed(features, state.env_state.z, state.env_state.label), key,
                          state.step)

  def add(self, state: PretrainState, action, features):
    """The buffer with every env's (o_t, y_t, a_t, first_t) added, and for APT the frame's novelty
    among the step's envs (features: current_features(state))."""
    first = state.env_state.t == 0
    novelty = 0.0 if self.agent is None else self.agent.novelty(features)
    return self.replay.add(state.buffer, self.replay.item(state.obs, state.env_state, action, first, novelty))

  def env_step(self, state: PretrainState, action, key):
    """-> (env_state, obs uint8 [num_envs, H, W, C]) after one step of every env."""
    images, env_state = self.env_step_images(state, action, key)
    return env_state, transforms.to_uint8(images)

  def env_step_images(self, state: PretrainState, action, key):
    """-> (float images [num_envs, H, W, C] in [-1, 1], differentiable in action; env_state)."""
    step = jax.vmap(self.env.step_images, (0, 0, 0, None))
    images, env_state, *_ = step(jax.random.split(key, self.num_envs), state.env_state, action, self.env_params)
    return images, env_state

  def play(self, state: PretrainState, action, key, features):
    """Adds (o_t, y_t, a_t, first_t) and steps every env; -> (env_state, obs, buffer)."""
    buffer = self.add(state, action, features)
    env_state, obs = self.env_step(state, action, key)
    return env_state, obs, buffer

  def sample(self, buffer, key):
    """Sequences [batch, L, ...] split over the mesh, each device's from its own envs (palmup.replay)."""
    return self.replay.sample(buffer, key, self.mesh)

  def learn(self, learner_state: LearnerState, seq, key):
    offset = self.config.learner.pair_offset
    a, b, valid = self.contrastive_views(key, seq.obs, seq.first, offset)
    learner_state, metrics, (h_a, h_b) = self.learner.update(learner_state, a, b, seq.label[:, 0], valid)
    encoded = {0: h_a} if self.config.learner.augment == "only" else {0: h_a, offset: h_b}  # "only": both views of frame 0
    return learner_state, metrics, self.pair_strip(a, b), encoded

  def agent_update(self, agent_state: AgentState, params, seq, key, step, encoded):
    """The agent's update on features of frames 0..n of the sampled sequences: of the frames it
    reads (ActorCritic.frames_read: 0 and n, and the rewarded frames for the batch reward), those in
    `encoded` reused, the others encoded here in one batch. Frames it does not read are left zero.
    The frames encoded here are the learner's views of them (learner.view), as the reused ones are:
    augmented unless learner.augment = "none", so the agent trains on augmented observations, as
    URLB's APT does."""
    n = self.config.agent.nstep
    needed = self.agent.frames_read(n)
    encoded = {i: h for i, h in encoded.items() if i in needed}
    missing = [i for i in needed if i not in encoded]
    k_views, k_update = jax.random.split(key)
    if missing:
      frames = seq.obs[:, jnp.asarray(missing)]  # [B, M, H, W, C]
      learner_config = self.config.learner
      views = view(k_views, frames.reshape((-1,) + frames.shape[2:]), learner_config.augment, learner_config.crop_min,
                   learner_config.jitter)
      h = self.learner.features(params, views).reshape(self.batch, len(missing), -1)
      encoded.update({i: h[:, j] for j, i in enumerate(missing)})
    zero = jnp.zeros_like(encoded[0])
    features = jnp.stack([encoded.get(i, zero) for i in range(n + 1)], axis=1)  # [B, n + 1, D]
    ends = jnp.asarray([0, n])
    observed = self.observed(features[:, ends], None if seq.z is None else seq.z[:, ends], seq.label[:, ends])
    return self.agent.update(agent_state, features, seq.action[:, 0], seq.first[:, :n + 1],
                             seq.novelty[:, :n + 1], k_update, step, observed)

  def agent_updates(self, agent_state: AgentState, params, buffer, seq, key, step, encoded):
    """agent.updates_per_step agent updates (`agent_update`): the first on the learner's sequences,
    reusing the frames it encoded, each other on a batch of its own replayed from `buffer`. -> (agent
    state, metrics averaged over the updates)."""
    agent_state, metrics = self.agent_update(agent_state, params, seq, key, step, encoded)
    extra = self.config.agent.updates_per_step - 1
    if not extra:
      return agent_state, metrics

    def another(agent_state, k):
      k_sample, k_update = jax.random.split(k)
      return self.agent_update(agent_state, params, self.sample(buffer, k_sample), k_update, step, {})

    keys = jax.random.split(jax.random.fold_in(key, 1), extra)
    agent_state, more = jax.lax.scan(another, agent_state, keys)
    return agent_state, jax.tree.map(lambda first, rest: (first + jnp.sum(rest, 0)) / (extra + 1), metrics, more)

  def gradient_play(self, state: PretrainState, key, features):
    """The gradient explorer acts, steps every env and updates its actor in one pass: the actor's
    gradient is of the particle reward of the frames the envs reach, through the step's own render and
    the encoder at the parameters the step began with (palmup.gradient_explorer). features:
    current_features(state). -> (action, env_state, obs uint8, agent state, metrics)."""
    env_state = state.env_state
    step = lambda action: self.env_step_images(state, action, key)
    encode = functools.partial(self.learner.encode, state.learner.params)
    observed = self.observed(features, env_state.z, env_state.label)
    action, images, env_state, agent_state, metrics = self.gradient.play(state.agent, observed, step, encode)
    return action, env_state, transforms.to_uint8(images), agent_state, metrics

  def contrastive_views(self, key, obs, first, offset):
    """palmup.learner.contrastive_views of sequences obs [B, L, ...] at the config's augmentation."""
    learner_config = self.config.learner
    return contrastive_views(key, obs, first, offset, learner_config.augment, learner_config.crop_min,
                             learner_config.jitter)

  def pair_strip(self, a, b):
    show = min(self.config.log.strip_pairs, self.batch)
    return transforms.to_uint8(jnp.stack([a[:show], b[:show]]))

  # ------------------------------------------------------------------------------ init, steps, chunk

  def init(self, key) -> PretrainState:
    k_learn, k_agent, k_reset, k_warm, key = jax.random.split(key, 5)
    env, learner = self.env, self.learner
    learner_state = learner.init(k_learn, env.observation_shape)
    agent_state = None
    if self.actor is not None:
      features = jax.eval_shape(learner.features, learner_state.params,
                                jnp.zeros((1,) + env.observation_shape, jnp.uint8))
      observed = jax.eval_shape(self.observed, features, jnp.zeros((1, env.latent_dim)), jnp.zeros((1,), jnp.int32))
      sizes = (observed.shape[-1],) if self.agent is not None else (observed.shape[-1], features.shape[-1])
      agent_state = self.actor.init(k_agent, *sizes)
    state = PretrainState(jnp.zeros((), jnp.int32), key, learner_state, agent_state, None, None, None)
    if self.replay is None:
      return state
    obs, env_state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, self.num_envs), self.env_params)
    state = state.replace(env_state=env_state, obs=obs, buffer=self.replay.init())

    def warm(state, k):  # uniform random actions until the buffer can be sampled
      ka, ks = jax.random.split(k)
      features = self.current_features(state) if self.agent is not None else None  # the stored novelty's
      env_state, obs, buffer = self.play(state, self.random_actions(ka), ks, features)
      return state.replace(env_state=env_state, obs=obs, buffer=buffer), None

    state, _ = jax.lax.scan(warm, state, jax.random.split(k_warm, self.config.train.warmup_steps))
    return state

  def static_batch(self, key):
    """B i.i.d. observations -> (obs uint8 [B, V, H, W, C] with V = 2 views for static_views =
    "latent" and 1 otherwise, labels [B], statistics)."""
    kz, ky, kn = jax.random.split(key, 3)
    world = self.world
    if world.source_images is not None:
      idx = jax.random.randint(kz, (self.batch,), 0, world.source_labels.shape[0])
      labels = world.source_labels[idx]
      return world.source_images[idx][:, None], labels, {"class_coverage": coverage(labels, world.source_classes)}
    labels = jax.random.randint(ky, (self.batch,), 0, self.env.num_classes)
    z = jax.random.normal(kz, (self.batch, self.env.generator.latent_dim))
    latent = self.env_params.noise_scale * self.env.latents_of(z, labels)
    stats = self.env_stats(latent, labels)
    if self.config.static_views == "single":
      return self.env.decode(latent, labels)[:, None], labels, stats
    neighbour = z + self.config.static_sigma * jax.random.truncated_normal(kn, -2.0, 2.0, z.shape)
    latents = jnp.stack([latent, self.env_params.noise_scale * self.env.latents_of(neighbour, labels)], 1)
    stats["view_latent_distance"] = jnp.mean(jnp.linalg.norm(latents[:, 1] - latents[:, 0], axis=-1))
    return self.env.decode(latents, jnp.stack([labels, labels], 1)), labels, stats

  def static_step(self, state: PretrainState, key):
    k_batch, k_views = jax.random.split(key)
    obs, labels, metrics = self.static_batch(k_batch)
    obs = sharding.shard_batch(obs, self.mesh)
    views = obs.shape[1]  # 2: the latent pair (o_0, o_1); 1: one sample, augmented twice
    a, b, valid = self.contrastive_views(k_views, obs, jnp.zeros((self.batch, views), bool), views - 1)
    learner_state, learner_metrics, _ = self.learner.update(state.learner, a, b, labels, valid)
    metrics.update(learner_metrics)
    strips = {"trajectory": obs[:self.show_envs, 0], "pairs": self.pair_strip(a, b)}
    return state.replace(learner=learner_state), metrics, strips, None

  @property
  def show_envs(self) -> int:
    return min(self.config.log.strip_envs, self.num_envs)

  def play_step(self, state: PretrainState, key):
    k_act, k_env, k_sample, k_views, k_agent = jax.random.split(key, 5)
    features = self.current_features(state)  # once, for the actor, the statistics and the stored novelty
    agent_state, metrics = state.agent, {}
    if self.gradient is None:
      action = self.act(state, k_act, features)
    else:  # acts, steps the envs and updates its actor in one pass
      action, env_state, obs, agent_state, metrics = self.gradient_play(state, k_env, features)
    metrics.update(self.play_stats(state, action, features))
    visited = self.visits(state)
    trajectory = state.obs[:self.show_envs]
    if self.gradient is None:
      env_state, obs, buffer = self.play(state, action, k_env, features)
    else:
      buffer = self.add(state, action, features)
    seq = self.sample(buffer, k_sample)
    learner_state, learner_metrics, pairs, encoded = self.learn(state.learner, seq, k_views)
    metrics.update(learner_metrics)
    if self.agent is not None:
      agent_state, agent_metrics = self.agent_updates(state.agent, state.learner.params, buffer, seq, k_agent,
                                                      state.step, encoded)
      metrics.update(agent_metrics)
    if self.gradient is not None:  # the next step's reference (apt.reference = "batch")
      agent_state = self.gradient.remember(agent_state, encoded[0])
    state = state.replace(learner=learner_state, agent=agent_state, env_state=env_state, obs=obs, buffer=buffer)
    return state, metrics, {"trajectory": trajectory, "pairs": pairs}, visited

  def scan_step(self, state: PretrainState, _):
    key, k = jax.random.split(state.key)
    one_step = self.static_step if self.replay is None else self.play_step
    state, metrics, strips, visited = one_step(state.replace(key=key), k)
    return state.replace(step=state.step + 1), (metrics, strips, visited)

  def chunk(self, state: PretrainState):
    state, (metrics, strips, visited) = jax.lax.scan(self.scan_step, state, None, length=self.config.train.chunk_steps)
    metrics = jax.tree.map(jnp.mean, metrics)
    if visited is not None:  # [T, num_envs, ...]: every frame of the chunk
      metrics.update(exploration.visit_metrics(self.world.judge, self.world.reference, *visited))
    return state, metrics, {"trajectory": strips["trajectory"], "pairs": strips["pairs"][-1]}


def coverage(labels, num_classes):
  """Share of the num_classes classes present in labels."""
  return jnp.mean(jnp.zeros(num_classes).at[labels].set(1.0))


def population_world(world: World, env_params: list[EnvParams]) -> World:
  """The world of a population of runs that differ only in their EnvParams (and seeds): `world`
  with the members' EnvParams stacked along a leading member axis."""
  return world.replace(env_params=jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *env_params))


def member_world(world: World, member: int) -> World:
  """One member's world of a population_world (concrete, or abstract: ShapeDtypeStructs)."""
  one_member = lambda x: (jax.ShapeDtypeStruct(x.shape[1:], x.dtype) if isinstance(x, jax.ShapeDtypeStruct)
                          else x[member])
  return world.replace(env_params=jax.tree.map(one_member, world.env_params))


def jit_pretrain(config, world: World, mesh, members: int | None = None):
  """-> (init(world, key), chunk(world, state), the state's shardings): make_pretrain's functions
  jitted for the mesh with data-parallel shardings (palmup.sharding): the world replicated, the
  state's per-env leaves split over the mesh, the rest replicated; chunk donates its input state.
  `world` (concrete, or abstract: ShapeDtypeStructs) gives only the arguments' structure.

  members: a population of that many runs in one program (world: a population_world; mesh:
  sharding.make_mesh(members=...); init takes keys [members], and every leaf of the state, metrics
  and strips gets a leading member axis): the chunk vmapped over the members' EnvParams and states,
  the member axis split over the mesh's "members" axis (vmap's spmd_axis_name), so each device group
  holds whole members and each member's envs are split over "data" within its group, as one run's
  are over a smaller mesh. The member axis has to be split so: vmap batches a convolution by merging
  the member axis into the conv's batch, members major, and a batch split only along its minor part
  (the envs) cannot stay split through that reshape, so XLA ran every member's whole batch on every
  device (measured: 3 members on 4 devices, unsplit, cost 12x one run's FLOPs per device, not 3x)."""
  init, chunk = make_pretrain(config, mesh)
  rep = sharding.replicated(mesh)
  world_shardings = jax.tree.map(lambda _: rep, world)
  one_world = world if members is None else member_world(world, 0)
  shardings = sharding.state_shardings(jax.eval_shape(init, one_world, jax.random.PRNGKey(0)), mesh)
  if members is not None:
    if sharding.MEMBERS not in mesh.axis_names:
      raise ValueError(f"a population needs a mesh with a {sharding.MEMBERS!r} axis (sharding.make_mesh(members=...)); "
                       f"got axes {mesh.axis_names}")
    axes = jax.tree.map(lambda _: None, world).replace(env_params=jax.tree.map(lambda _: 0, world.env_params))
    vmap = functools.partial(jax.vmap, in_axes=(axes, 0), spmd_axis_name=sharding.MEMBERS)
    init, chunk = vmap(init), vmap(chunk)
    shardings = sharding.behind_member_axis(shardings)
  return (jax.jit(init, in_shardings=(world_shardings, rep), out_shardings=shardings),
          jax.jit(chunk, in_shardings=(world_shardings, shardings), out_shardings=(shardings, rep, rep),
                  donate_argnums=1),
          shardings)
