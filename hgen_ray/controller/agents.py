"""RLlib agents driven by hand: DQN for discrete choices, SAC for continuous ones.

This is the one module that touches RLlib's developer-level API (pinned to
ray 2.60.0), so an upgrade changes only this file. Nothing here implements
RL: the learners, losses, target networks, modules and the prioritised episode
replay buffer are RLlib's own. We only

- build a learner group in-process (``num_learners=0``; no env, no Algorithm),
- act with an inference-only copy of the module, synced after each update,
- turn each finished candidate into one terminated ``SingleAgentEpisode`` whose
  reward arrives at the last step, and
- sample n-step batches with n drawn from 1 to the episode length. The reward
  is sparse, so long n carries it back quickly (with n_step=1 DQN learned much
  more slowly here); but RLlib's buffer only samples a step whose n-step window
  fits inside the episode, so a fixed n equal to the episode length would only
  ever train the first step.

``timesteps`` is passed to every update: DQN moves its target network only
when the env-step counter advances by ``target_network_update_freq``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import PrioritizedEpisodeReplayBuffer

__all__ = ["ContinuousAgent", "DiscreteAgent"]

_POLICY = "default_policy"
_BUFFER_CAPACITY = 50_000  # env steps; a long search stores every episode
_BATCH_SIZE = 32  # transitions per update
_PRIORITY_BETA = 0.4  # importance-sampling correction of prioritised replay (Schaul et al. 2016)
_OBSERVATION_BOUND = 10.0
# Rewards here are O(1) and arrive once per episode; SAC's default alpha of 1.0 lets the
# entropy bonus swamp them and the actor stays at the centre of the range.
_SAC_INITIAL_ALPHA = 0.05  # features are normalised to [0, 1]; the bound only declares the space


def _td_errors(logged: Any) -> np.ndarray:
    """RLlib logs TD errors as a stats object holding a list of arrays; flatten it."""
    values = logged.peek() if hasattr(logged, "peek") else logged
    return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in values])


class _Agent:
    """What DQN and SAC share: learner, acting module, replay, state."""

    def __init__(self, config: Any, episode_length: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.episode_length = episode_length
        self.learner_group = config.build_learner_group()
        self.module = config.get_rl_module_spec(inference_only=True).build()
        self.buffer = PrioritizedEpisodeReplayBuffer(capacity=_BUFFER_CAPACITY)
        self.buffer.rng = np.random.default_rng(seed)  # RLlib seeds it from OS entropy; a search must replay
        self.env_steps = 0
        self.updates = 0
        self._sync()

    def _sync(self) -> None:
        self.module.set_state(self.learner_group.get_weights()[_POLICY])

    def add_episode(self, observations: list[np.ndarray], actions: list[Any], reward: float) -> None:
        """Store one finished candidate: reward on the last step, terminated."""
        terminal = np.zeros_like(observations[0])  # the episode ends after the last choice
        rewards = [0.0] * (len(actions) - 1) + [float(reward)]
        episode = SingleAgentEpisode(observations=[*observations, terminal], actions=list(actions), rewards=rewards,
                                     terminated=True, len_lookback_buffer=0)
        self.buffer.add([episode.to_numpy()])
        self.env_steps += len(actions)

    def train(self, updates: int) -> None:
        """Gradient steps on prioritised n-step samples; priorities follow the TD errors."""
        if self.buffer.get_num_timesteps() < _BATCH_SIZE:
            return
        for _ in range(updates):
            batch = self.buffer.sample(num_items=_BATCH_SIZE, n_step=(1, self.episode_length + 1), gamma=1.0,
                                       beta=_PRIORITY_BETA, sample_episodes=True)
            results = self.learner_group.update(episodes=batch,
                                                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self.env_steps})
            self.buffer.update_priorities(_td_errors(results[0][_POLICY]["td_error"]), _POLICY)
            self.updates += 1
        self._sync()

    def get_state(self) -> dict[str, Any]:
        """Weights, target networks, optimizers, replay buffer and counters."""
        return {"learner": self.learner_group.get_state(), "buffer": self.buffer.get_state(),
                "env_steps": self.env_steps, "updates": self.updates}

    def set_state(self, state: dict[str, Any]) -> None:
        self.learner_group.set_state(state["learner"])
        self.buffer.set_state(state["buffer"])
        self.env_steps = state["env_steps"]
        self.updates = state["updates"]
        self._sync()


def _observation_space(size: int) -> gym.spaces.Box:
    return gym.spaces.Box(-_OBSERVATION_BOUND, _OBSERVATION_BOUND, (size,), np.float32)


class DiscreteAgent(_Agent):
    """Stage 1: RLlib DQN (double, dueling, prioritised) over ``num_actions`` options.

    Args:
        observation_size: Length of the state vector.
        num_actions: Options per step.
        episode_length: Steps per candidate (also the n-step horizon).
        hidden_units: Width of the two hidden layers.
        exploration_episodes: Episodes over which epsilon falls from 1 to 0.05.
        seed: Seeds the initial weights.
    """

    def __init__(self, observation_size: int, num_actions: int, episode_length: int, hidden_units: int,
                 exploration_episodes: int, seed: int) -> None:
        decay_steps = max(1, exploration_episodes * episode_length)
        config = (
            DQNConfig()
            .environment(observation_space=_observation_space(observation_size),
                         action_space=gym.spaces.Discrete(num_actions))
            .rl_module(model_config={"fcnet_hiddens": [hidden_units, hidden_units]})
            .learners(num_learners=0)
            .training(n_step=episode_length, gamma=1.0, train_batch_size=_BATCH_SIZE, lr=1e-3,
                      target_network_update_freq=8 * episode_length,
                      epsilon=[[0, 1.0], [decay_steps, 0.05]])
            .debugging(seed=seed)
        )
        super().__init__(config, episode_length, seed)

    @torch.no_grad()
    def act(self, observation: np.ndarray, explore: bool) -> int:
        batch = {Columns.OBS: torch.as_tensor(observation[None], dtype=torch.float32)}
        if explore:  # epsilon-greedy; epsilon follows the env-step schedule
            out = self.module.forward_exploration(batch, t=self.env_steps)
        else:
            out = self.module.forward_inference(batch)
        return int(out[Columns.ACTIONS][0])


class ContinuousAgent(_Agent):
    """Stage 2: RLlib SAC, a squashed-Gaussian actor with twin critics; actions in [-1, 1].

    Args:
        observation_size: Length of the state vector (including the discrete choice).
        episode_length: Steps per candidate (also the n-step horizon).
        hidden_units: Width of the hidden layers of actor and critics (small: the default
            256x256 costs 5x the parameters with no gain here).
        seed: Seeds the initial weights.
    """

    def __init__(self, observation_size: int, episode_length: int, hidden_units: int, seed: int) -> None:
        config = (
            SACConfig()
            .environment(observation_space=_observation_space(observation_size),
                         action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
            .rl_module(model_config={"fcnet_hiddens": [hidden_units, hidden_units],
                                     "head_fcnet_hiddens": [hidden_units]})
            .learners(num_learners=0)
            .training(n_step=episode_length, gamma=1.0, train_batch_size=_BATCH_SIZE,
                      initial_alpha=_SAC_INITIAL_ALPHA, actor_lr=3e-3, critic_lr=3e-3, alpha_lr=3e-3)
            .debugging(seed=seed)
        )
        super().__init__(config, episode_length, seed)

    @torch.no_grad()
    def act(self, observation: np.ndarray, explore: bool) -> float:
        batch = {Columns.OBS: torch.as_tensor(observation[None], dtype=torch.float32)}
        if explore:
            logits = self.module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
            action = self.module.get_exploration_action_dist_cls().from_logits(logits).sample()
        else:
            logits = self.module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
            action = self.module.get_inference_action_dist_cls().from_logits(logits).to_deterministic().sample()
        return float(np.clip(action[0, 0].item(), -1.0, 1.0))
