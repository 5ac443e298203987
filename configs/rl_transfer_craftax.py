"""RL transfer on Craftax-Classic-Pixels: PPO with a frozen pretrained / frozen random / from-scratch encoder.

    palmup rl-transfer --config configs/rl_transfer_craftax.py --workdir runs/rl_craftax_random
    palmup rl-transfer --config configs/rl_transfer_craftax.py --workdir runs/rl_craftax_pretrained \
      --config.encoder.path=runs/pretrain/encoder --config.encoder.mode=pretrained
    palmup rl-transfer --config configs/rl_transfer_craftax.py --workdir runs/rl_minatar \
      --config.task.name=minatar --config.task.game=breakout

CPU default: 3 seeds x 50k env steps, 16 envs x 64 steps per update, the pretrain config's small
CNN at 32x32 grey (the shipped Fashion-MNIST encoder's input; the 63x63 RGB frames are resized and
turned grey in palmup.rl.envs.to_encoder_obs). On 2 CPU cores the frozen modes (pretrained,
random) run about 800 env steps/s over the 3 seeds (about 3 min plus 45 s of compilation);
scratch, which backpropagates through the CNN in every PPO epoch, about 65 (about 40 min). PPO follows the
Craftax baseline (purejaxrl-style): lr 2e-4 annealed, 4 epochs x 8 minibatches, gamma 0.99,
GAE lambda 0.8, clip 0.2, entropy 0.01, value 0.5, grad norm 1.0; heads 2 x 256 tanh (512 there).
Accelerator scale (the Craftax paper's budget): ppo.total_env_steps=1_000_000_000 (1e9; 1e8 is
its short run), ppo.num_envs=1024, ppo.num_steps=64, ppo.hidden=512, task.reset_pool=1024,
num_seeds=5; with a 64x64 RGB encoder (configs/pretrain_eye.py, pretrain_accelerator.py).
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_seeds = 3  # vmapped: all seeds run in one program
  # name: craftax_classic_pixels | minatar | atari. game: MinAtar game (asterix, breakout, freeway,
  # seaquest, space_invaders) or ALE ROM (breakout, pong, ...); unused by Craftax. reset_pool:
  # Craftax worlds generated per rollout for the envs whose episode ends. frameskip,
  # repeat_action_probability (sticky actions): ALE only.
  c.task = dict(name="craftax_classic_pixels", game="breakout", reset_pool=16, frameskip=4,
                repeat_action_probability=0.25)
  # mode: pretrained (needs path) | random | scratch. path: a pretrain workdir's encoder/ (or the
  # workdir); its architecture and input shape then replace learner.encoder / obs_size / channels.
  c.encoder = dict(path=ml_collections.FieldReference(None, field_type=str), mode="random",
                   obs_size=32, channels=1)
  c.learner = dict(encoder=dict(name="conv", widths=(32, 64, 128, 256), features=256, conv_grad="auto",
                                stem="cifar", width=64))
  c.ppo = dict(num_envs=16, num_steps=64, total_env_steps=50_000, lr=2e-4, anneal_lr=True,
               update_epochs=4, num_minibatches=8, gamma=0.99, gae_lambda=0.8, clip_eps=0.2,
               ent_coef=0.01, vf_coef=0.5, max_grad_norm=1.0, hidden=256, clip_rewards=False)
  # The final return: mean return of the episodes that ended in the last final_fraction of updates.
  c.eval = dict(final_fraction=0.1)
  return c
