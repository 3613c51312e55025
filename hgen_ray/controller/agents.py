"""RLlib agents driven by hand: DQN for discrete choices, SAC for continuous ones.

This is the one module that touches RLlib's developer-level API (pinned to
ray 2.60.0), so an upgrade changes only this file. Nothing here implements
RL: the learners, losses, target networks, modules and the prioritised episode
replay buffer are RLlib's own. We only

- build a learner group in-process (``num_learners=0``; no env, no Algorithm),
- act with an inference-only copy of the module, synced after each update,
- give every step of a finished candidate **Monte Carlo credit**: each step is
  stored as its own one-step terminated episode carrying the episode's final
  (shaped, normalised) reward, so no target bootstraps from a barely trained
  network and every step, the human one included, is sampled in proportion.
  (Before, 4-step episodes with one terminal reward were sampled as n-step
  windows, and most early-layer targets bootstrapped from the target network.)
  The replay is refilled before each round of updates, because the rewards are
  normalised within the search (their ranks) and move as trials finish.
- choose DQN's action among the step's own options only: epsilon-greedy over
  them, and the greedy action the best Q-value among them (RLlib's new-stack
  DQN has no action masking, and no ``noisy`` nets: its module does not
  implement them, so exploration is epsilon-greedy).

``timesteps`` is passed to every update: DQN moves its target network when the
env-step counter advances by ``target_network_update_freq`` (here every
candidate; with Monte Carlo credit the target is not bootstrapped from anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.dqn.dqn_learner import QF_PREDS
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
_SAC_INITIAL_ALPHA = 0.05
_SAC_TAU = 0.05  # the target critics follow at 5% a step (RLlib's 0.005 left them mostly untrained in 30 trials)


def _td_errors(logged: Any) -> np.ndarray:
    """RLlib logs TD errors as a stats object holding a list of arrays; flatten it."""
    values = logged.peek() if hasattr(logged, "peek") else logged
    return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in values])


class _Agent:
    """What DQN and SAC share: learner, acting module, the episodes seen, the replay refilled from them."""

    def __init__(self, config: Any, seed: int) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.seed = seed
        self.learner_group = config.build_learner_group()
        self.module = config.get_rl_module_spec(inference_only=True).build()
        self.episodes: list[tuple[list[np.ndarray], list[Any]]] = []  # each candidate's observations and actions
        self.env_steps = 0
        self.updates = 0
        self._sync()

    def _sync(self) -> None:
        self.module.set_state(self.learner_group.get_weights()[_POLICY])

    def add_episode(self, observations: list[np.ndarray], actions: list[Any]) -> None:
        """Store one finished candidate's steps; its reward comes with :meth:`train`."""
        self.episodes.append((list(observations), list(actions)))
        self.env_steps += len(actions)

    def _replay(self, rewards: Sequence[float]) -> PrioritizedEpisodeReplayBuffer:
        """Every stored step as a one-step terminated episode carrying its candidate's reward."""
        buffer = PrioritizedEpisodeReplayBuffer(capacity=_BUFFER_CAPACITY)
        buffer.rng = np.random.default_rng([self.seed, len(self.episodes)])  # RLlib seeds from OS entropy
        steps = []
        for (observations, actions), reward in zip(self.episodes, rewards, strict=True):
            for observation, action in zip(observations, actions):
                steps.append(SingleAgentEpisode(observations=[observation, np.zeros_like(observation)],
                                                actions=[action], rewards=[float(reward)], terminated=True,
                                                len_lookback_buffer=0).to_numpy())
        buffer.add(steps)
        return buffer

    def train(self, rewards: Sequence[float], updates: int) -> None:
        """Gradient steps on prioritised samples of every step so far, ``rewards[i]`` being episode i's."""
        buffer = self._replay(rewards)
        if buffer.get_num_timesteps() < _BATCH_SIZE:
            return
        for _ in range(updates):
            batch = buffer.sample(num_items=_BATCH_SIZE, n_step=1, gamma=1.0, beta=_PRIORITY_BETA,
                                  sample_episodes=True)
            results = self.learner_group.update(episodes=batch,
                                                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self.env_steps})
            buffer.update_priorities(_td_errors(results[0][_POLICY]["td_error"]), _POLICY)
            self.updates += 1
        self._sync()

    def get_state(self) -> dict[str, Any]:
        """Weights, target networks, optimizers, the episodes seen and counters."""
        return {"learner": self.learner_group.get_state(), "episodes": self.episodes,
                "env_steps": self.env_steps, "updates": self.updates}

    def set_state(self, state: dict[str, Any]) -> None:
        self.learner_group.set_state(state["learner"])
        self.episodes = state["episodes"]
        self.env_steps = state["env_steps"]
        self.updates = state["updates"]
        self._sync()


def _observation_space(size: int) -> gym.spaces.Box:
    return gym.spaces.Box(-_OBSERVATION_BOUND, _OBSERVATION_BOUND, (size,), np.float32)


class DiscreteAgent(_Agent):
    """Stage 1: RLlib DQN (double, dueling, prioritised) over at most ``num_actions`` options a step.

    Args:
        observation_size: Length of the state vector.
        num_actions: The most options any step has.
        episode_length: Steps per candidate (the target network moves once per candidate).
        hidden_units: Width of the two hidden layers.
        seed: Seeds the initial weights.
    """

    def __init__(self, observation_size: int, num_actions: int, episode_length: int, hidden_units: int,
                 seed: int) -> None:
        config = (
            DQNConfig()
            .environment(observation_space=_observation_space(observation_size),
                         action_space=gym.spaces.Discrete(num_actions))
            .rl_module(model_config={"fcnet_hiddens": [hidden_units, hidden_units]})
            .learners(num_learners=0)
            .training(n_step=1, gamma=1.0, train_batch_size=_BATCH_SIZE, lr=1e-3,
                      target_network_update_freq=episode_length)
            .debugging(seed=seed)
        )
        super().__init__(config, seed)

    @torch.no_grad()
    def act(self, observation: np.ndarray, options: int, epsilon: float, rng: np.random.Generator) -> int:
        """Epsilon-greedy among the step's first ``options`` actions, one per option (none aliased)."""
        if rng.random() < epsilon:
            return int(rng.integers(options))
        batch = {Columns.OBS: torch.as_tensor(observation[None], dtype=torch.float32)}
        q_values = self.module.compute_q_values(batch)[QF_PREDS][0, :options]
        return int(q_values.argmax())


class ContinuousAgent(_Agent):
    """Stage 2: RLlib SAC, a squashed-Gaussian actor with twin critics; actions in [-1, 1].

    Args:
        observation_size: Length of the state vector (including the discrete choice).
        hidden_units: Width of the hidden layers of actor and critics (small: the default
            256x256 costs 5x the parameters with no gain here).
        seed: Seeds the initial weights.
    """

    def __init__(self, observation_size: int, hidden_units: int, seed: int) -> None:
        config = (
            SACConfig()
            .environment(observation_space=_observation_space(observation_size),
                         action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
            .rl_module(model_config={"fcnet_hiddens": [hidden_units, hidden_units],
                                     "head_fcnet_hiddens": [hidden_units]})
            .learners(num_learners=0)
            .training(n_step=1, gamma=1.0, train_batch_size=_BATCH_SIZE, tau=_SAC_TAU,
                      initial_alpha=_SAC_INITIAL_ALPHA, actor_lr=3e-3, critic_lr=3e-3, alpha_lr=3e-3)
            .debugging(seed=seed)
        )
        super().__init__(config, seed)

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
