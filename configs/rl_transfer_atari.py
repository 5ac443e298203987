"""RL transfer on an Atari game through ALE (Breakout): PPO on a frozen pretrained / frozen random /
from-scratch encoder. Everything but the task and PPO's sizes is configs/rl_transfer_craftax.py's.

    palmup rl-transfer --config configs/rl_transfer_atari.py --workdir runs/rl_breakout_random
    palmup rl-transfer --config configs/rl_transfer_atari.py --workdir runs/rl_pong \
      --config.task.game=pong --config.encoder.path=runs/pretrain/encoder --config.encoder.mode=pretrained

ALE runs on the host (all seeds' emulators in one AtariVectorEnv; the policy step and the PPO
update are jitted and vmapped over seeds). An env step is `task.frameskip` = 4 emulator frames,
max-pooled over the last two; full 210x160 frames, no frame stack (the encoder sees one frame),
sticky actions 0.25, up to 30 no-op starts; PPO trains on sign-clipped rewards and the returns
reported are the game's unclipped score.
CPU default: 3 seeds x 50k env steps (200k frames), 8 envs x 128 steps per update; on 2 CPU cores
the frozen modes run about 450 env steps/s over the 3 seeds (about 6 min), scratch about 45 (about
an hour). PPO as CleanRL's ppo_atari (lr 2.5e-4 annealed, 4 epochs x 4
minibatches, gamma 0.99, GAE lambda 0.95, clip 0.1, entropy 0.01, value 0.5, grad norm 0.5).
Accelerator scale (a many-core host: ALE steps on CPU threads): ppo.total_env_steps=10_000_000
(40M frames, the usual Atari PPO budget), ppo.num_envs=64, num_seeds=5, task.game in breakout,
pong, ms_pacman, space_invaders; a 64x64 RGB encoder.
"""
import runpy
from pathlib import Path


def get_config():
  c = runpy.run_path(str(Path(__file__).with_name("rl_transfer_craftax.py")))["get_config"]()
  c.task.update(name="atari", game="breakout")
  c.ppo.update(num_envs=8, num_steps=128, total_env_steps=50_000, lr=2.5e-4, num_minibatches=4,
               gae_lambda=0.95, clip_eps=0.1, max_grad_norm=0.5, clip_rewards=True)
  return c
