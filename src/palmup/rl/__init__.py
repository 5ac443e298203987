"""RL transfer evaluation: PPO (palmup.rl.ppo) on pixel tasks (palmup.rl.envs) with a pretrained,
random or from-scratch encoder (palmup.rl.transfer, `palmup rl-transfer`)."""
