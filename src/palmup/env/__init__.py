"""The latent environment: an agent steers a frozen generator's latent; observations are its images.

    env = LatentEnv(gen, gen_params, obs_size=32)
    params = EnvParams(ema=0.9)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

gymnax-shaped and pure: jit and vmap are the caller's (vmap over keys/states/actions for many envs,
and over EnvParams fields for a sweep). The dynamics are `latent_transition`, in one place.
"""
from palmup.env.latent_env import (LATENT_SPACES, EnvParams, EnvState, LatentEnv, latent_transition, make_env,
                                   params_from_config)

__all__ = ["LATENT_SPACES", "EnvParams", "EnvState", "LatentEnv", "latent_transition", "make_env", "params_from_config"]
