"""Tune searchers over the H-DNN space: the two-stage RLlib controller and random search.

``HGenSearcher`` is H-Gen's search strategy as a Ray Tune ``Searcher``:

- ``suggest()`` rolls the policy through the layers. At each step the DQN
  agent (stage 1) picks the discrete option (epsilon-greedy among the step's
  options; epsilon falls from 1 after the warm-up to ``search.epsilon_floor``
  over half the remaining trials), then the SAC agent (stage 2), seeing that
  choice, picks the continuous value. As in AMC, a layer's choice is then
  raised to the least compression that keeps a storage limit reachable. The
  last step is the human one: off or a mechanism with k, then the level (d or
  tau), lowered if needed to fit the labour limit. A candidate equal to a
  finished one (:meth:`SearchSpace.canonical`) is not run again: the agents
  learn its known reward and the policy draws again.
- ``on_trial_complete()`` turns the trial into one episode per agent and
  trains both on every episode so far, each step credited with its episode's
  shaped reward (:func:`hgen_ray.metric.agent_reward`: no feasibility cliff) as
  a rank within the search (:mod:`.reward_ranks`). A failed trial scores as
  the worst infeasible candidate, and the search goes on.
- With ``search.imagined_per_trial`` above 0 (off by default: on the synthetic
  cliff it lost to no imagination, docs/results/imagination.md), before each
  round of updates the policy also imagines that many candidates without
  running them (Dyna); the learned
  reward model (:mod:`.reward_model`), refit on every measured candidate,
  scores all imagined episodes so far, ranked among the measured ones.
- ``save()``/``restore()`` hold both agents' weights, target networks,
  optimizers and replay buffers, and the in-flight rollouts, so ``--resume``
  continues learning instead of starting over. Tune calls them itself.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from hgen_ray.config import RewardConfig, SearchConfig
from hgen_ray.config import candidate_to_config
from hgen_ray.controller.agents import ContinuousAgent, DiscreteAgent
from hgen_ray.controller.reward_model import MIN_MEASURED_TO_IMAGINE, RewardModel, candidate_features
from hgen_ray.controller.reward_ranks import centred_ranks, ranks_among
from hgen_ray.controller.space import NUM_DISCRETE_ACTIONS, SearchSpace
from hgen_ray.controller.state_digest import state_digest
from hgen_ray.metric import agent_reward, failed_reward

__all__ = ["HGenSearcher", "RandomSearcher", "Rollout"]

log = logging.getLogger(__name__)
REWARD_METRIC = "reward"
MAX_REDRAWS = 20  # policy draws per suggestion before a candidate already measured is run again


@dataclass
class Rollout:
    """One episode: per step, both agents' observations and actions."""

    discrete_obs: list[np.ndarray] = field(default_factory=list)
    continuous_obs: list[np.ndarray] = field(default_factory=list)
    discrete: list[int] = field(default_factory=list)
    continuous: list[float] = field(default_factory=list)


def _one_hot(action: int) -> np.ndarray:
    vector = np.zeros(NUM_DISCRETE_ACTIONS, dtype=np.float32)
    vector[action] = 1.0
    return vector


class RandomSearcher(Searcher):
    """Uniform candidates over the same space, with the same budget projection (the ``random`` baseline)."""

    def __init__(self, space: SearchSpace, seed: int, metric: str = REWARD_METRIC, mode: str = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.rng = np.random.default_rng(seed)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        discrete, continuous = self.space.legal_actions(*self.space.random_actions(self.rng))
        return candidate_to_config(self.space.decode(discrete, continuous))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # random search learns nothing

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.rng.bit_generator.state, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.rng.bit_generator.state = pickle.load(handle)


class HGenSearcher(Searcher):
    """The two-stage RLlib controller (DQN then SAC at every step).

    Args:
        space: Steps, options and observations.
        weights: Reward weights, for the failed-trial score.
        settings: Budget, warm-up, updates per trial, network width.
        seed: Seeds the agents and the warm-up draws.
    """

    def __init__(self, space: SearchSpace, weights: RewardConfig, settings: SearchConfig, seed: int,
                 metric: str = REWARD_METRIC, mode: str = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.weights = weights
        self.settings = settings
        self.seed = seed
        self._build()

    def _build(self) -> None:
        self.discrete_agent = DiscreteAgent(self.space.observation_size, NUM_DISCRETE_ACTIONS, self.space.num_steps,
                                            self.settings.hidden_units, self.seed)
        self.continuous_agent = ContinuousAgent(self.space.observation_size + NUM_DISCRETE_ACTIONS,
                                                self.settings.hidden_units, self.seed + 1)
        self.rng = np.random.default_rng([self.seed, 1])  # warm-up draws, not the random baseline's
        self.explore_rng = np.random.default_rng([self.seed, 2])  # epsilon-greedy's draws
        self.imagine_rng = np.random.default_rng([self.seed, 3])  # imagined rollouts' warm-up and epsilon draws
        self.reward_model = RewardModel(self.seed)
        self.pending: dict[str, Rollout] = {}
        self.suggested = 0
        self.rewards: list[float] = []  # reported, per finished trial
        self.agent_rewards: list[float] = []  # shaped, per measured episode the agents hold (reused duplicates too)
        self.imagined_order: list[bool] = []  # per episode the agents hold, in order: was it imagined?
        self.finished: dict[tuple, float] = {}  # a measured candidate's canonical form -> its shaped reward

    def epsilon(self) -> float:
        """DQN's exploration now: 1 at the end of the warm-up, falling linearly over half the remaining trials
        to the floor."""
        settings = self.settings
        decay = max(1, (settings.trials - settings.warmup_trials) // 2)
        after_warm_up = max(0, self.suggested - settings.warmup_trials)
        return max(settings.epsilon_floor, 1.0 - after_warm_up / decay)

    def rollout(self, explore: bool = True, imagined: bool = False) -> Rollout:
        """Walk the steps; random during warm-up, the agents' policies after."""
        warm_up = explore and self.suggested < self.settings.warmup_trials
        warm_up_rng, explore_rng = (self.imagine_rng, self.imagine_rng) if imagined else (self.rng, self.explore_rng)
        if warm_up:
            random_discrete, random_continuous = self.space.random_actions(warm_up_rng)
        episode = Rollout()
        epsilon = self.epsilon() if explore else 0.0
        for step in range(self.space.num_steps):
            observation = self.space.observation(step, episode.discrete, episode.continuous)
            action = random_discrete[step] if warm_up else self.discrete_agent.act(
                observation, len(self.space.options(step)), epsilon, explore_rng)
            informed = np.concatenate([observation, _one_hot(action)])
            value = random_continuous[step] if warm_up else self.continuous_agent.act(informed, explore)
            legal = self.space.within_budget(step, episode.discrete, episode.continuous, action, value)
            if legal != (action, value):  # the agents learn from what was actually tried
                action, value = legal
                informed = np.concatenate([observation, _one_hot(action)])
            episode.discrete_obs.append(observation)
            episode.continuous_obs.append(informed)
            episode.discrete.append(action)
            episode.continuous.append(value)
        return episode

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(MAX_REDRAWS):
            episode = self.rollout(explore=True)
            candidate = self.space.decode(episode.discrete, episode.continuous)
            known = self.finished.get(self.space.canonical(candidate))
            if known is None:
                break
            self._remember(episode, known)  # measured already: learn its reward, run something new
        else:
            log.info("%d draws in a row were candidates already measured; running the last again", MAX_REDRAWS)
        self.suggested += 1
        self.pending[trial_id] = episode
        return candidate_to_config(candidate)

    def _canonical(self, episode: Rollout) -> tuple:
        return self.space.canonical(self.space.decode(episode.discrete, episode.continuous))

    def greedy_candidate(self) -> dict[str, Any]:
        """The candidate the current policies choose without exploring."""
        episode = self.rollout(explore=False)
        return candidate_to_config(self.space.decode(episode.discrete, episode.continuous))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        episode = self.pending.pop(trial_id, None)
        if episode is None:
            return
        metric = self.metric or REWARD_METRIC
        failed = error or not result or metric not in result
        reward = failed_reward(self.weights) if failed else float(result[metric])  # type: ignore[index]
        shaped = reward if failed else agent_reward({**result, "reward": reward}, self.weights)  # type: ignore[dict-item]
        self.rewards.append(reward)
        self.finished[self._canonical(episode)] = shaped
        self.learn(episode, shaped)

    def learn(self, episode: Rollout, shaped_reward: float) -> None:
        """Store the episode in both agents, imagine more, and train both on every episode so far, by rank."""
        self._remember(episode, shaped_reward)
        self.imagine()
        ranks = self.episode_ranks()
        self.discrete_agent.train(ranks, self.settings.updates_per_trial)
        self.continuous_agent.train(ranks, self.settings.updates_per_trial)

    def imagine(self) -> None:
        """Roll the exploring policy ``search.imagined_per_trial`` times and store the episodes unscored."""
        if len(self.agent_rewards) < MIN_MEASURED_TO_IMAGINE:
            return
        for _ in range(self.settings.imagined_per_trial):
            self._add_to_agents(self.rollout(explore=True, imagined=True), imagined=True)

    def episode_ranks(self) -> np.ndarray:
        """Every episode's training reward, in the agents' order: a measured one its rank within the search,
        an imagined one where the reward model's pessimistic score ranks among the measured."""
        measured = iter(centred_ranks(self.agent_rewards))
        imagined = iter(self._imagined_ranks() if any(self.imagined_order) else [])
        return np.array([next(imagined) if was_imagined else next(measured) for was_imagined in self.imagined_order])

    def _imagined_ranks(self) -> np.ndarray:
        """The model's scores of the imagined episodes, ranked among its scores of the measured ones: both are
        shrunk towards the mean alike, so an imagined twin of the best measured candidate ranks near the top."""
        features, was_imagined = np.stack(self._episode_features()), np.array(self.imagined_order)
        imagined, measured = features[was_imagined], features[~was_imagined]
        scores = self.reward_model.scores(measured, self.agent_rewards, np.concatenate([imagined, measured]))
        return ranks_among(scores[:len(imagined)], scores[len(imagined):])

    @property
    def measured_features(self) -> list[np.ndarray]:
        """The measured episodes as the reward model sees them, in order (aligned with ``agent_rewards``)."""
        return [f for f, was_imagined in zip(self._episode_features(), self.imagined_order) if not was_imagined]

    @property
    def imagined_features(self) -> list[np.ndarray]:
        """The imagined episodes as the reward model sees them, in order."""
        return [f for f, was_imagined in zip(self._episode_features(), self.imagined_order) if was_imagined]

    def _episode_features(self) -> list[np.ndarray]:
        """Every episode the agents hold, as the reward model sees it, rebuilt from their actions."""
        return [candidate_features(discrete, [float(value[0]) for value in continuous])
                for (_, discrete), (_, continuous) in zip(self.discrete_agent.episodes,
                                                          self.continuous_agent.episodes, strict=True)]

    def _remember(self, episode: Rollout, shaped_reward: float) -> None:
        self.agent_rewards.append(shaped_reward)
        self._add_to_agents(episode, imagined=False)

    def _add_to_agents(self, episode: Rollout, imagined: bool) -> None:
        self.imagined_order.append(imagined)
        self.discrete_agent.add_episode(episode.discrete_obs, episode.discrete)
        self.continuous_agent.add_episode(episode.continuous_obs,
                                          [np.array([v], dtype=np.float32) for v in episode.continuous])

    def get_state(self) -> dict[str, Any]:
        return {
            "discrete": self.discrete_agent.get_state(),
            "continuous": self.continuous_agent.get_state(),
            "rng": self.rng.bit_generator.state,
            "explore_rng": self.explore_rng.bit_generator.state,
            "imagine_rng": self.imagine_rng.bit_generator.state,
            "pending": self.pending,
            "suggested": self.suggested,
            "rewards": self.rewards,
            "agent_rewards": self.agent_rewards,
            "imagined_order": self.imagined_order,
            "finished": self.finished,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.discrete_agent.set_state(state["discrete"])
        self.continuous_agent.set_state(state["continuous"])
        self.rng.bit_generator.state = state["rng"]
        self.explore_rng.bit_generator.state = state["explore_rng"]
        if "imagine_rng" in state:  # a search saved before imagination existed has none, and no imagined episodes
            self.imagine_rng.bit_generator.state = state["imagine_rng"]
        self.pending = state["pending"]
        self.suggested = state["suggested"]
        self.rewards = state["rewards"]
        self.agent_rewards = state["agent_rewards"]
        self.imagined_order = state.get("imagined_order") or [False] * len(self.discrete_agent.episodes)
        self.finished = state["finished"]

    def state_digest(self) -> str:
        """A hash of weights, optimizers, replay buffers and history (see :mod:`.state_digest`)."""
        return state_digest(self.get_state())

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.set_state(pickle.load(handle))
        log.info("restored the controller from %s (state %s)", checkpoint_path, self.state_digest())

    def __getstate__(self) -> dict[str, Any]:
        # Live learner groups do not pickle; their state does (Tune pickles the searcher).
        plain = {k: v for k, v in self.__dict__.items()
                 if k not in ("discrete_agent", "continuous_agent", "rng", "explore_rng", "imagine_rng")}
        return {"plain": plain, "agents": self.get_state()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state["plain"])
        self._build()
        self.set_state(state["agents"])
