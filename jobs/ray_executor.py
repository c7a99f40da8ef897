"""The Ray back-end of ``jobs.executors``: Ray tasks, and a pool of Ray actors for stateful
per-batch work (scoring: the model is loaded once per actor).

Each actor takes one GPU where the cluster has GPUs (Ray sets ``CUDA_VISIBLE_DEVICES``, so the
work sees it as ``cuda``), one CPU otherwise. Every actor holds one item at a time, so when an
actor dies the item it held is known: that item is charged a try and re-sent (bounded by
``ExecutorConfig.max_retries``), Ray restarts the actor (reloading the model), and every other
item is unaffected. Imported only when ``--executor ray`` is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from jobs.executor_types import ExecutorConfig, TaskResult, describe_error

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def import_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(
            "--executor ray needs Ray: pip install 'ctae[ray]' (or run with --executor local)"
        ) from err
    return ray


def ensure_ray(config: ExecutorConfig) -> Any:
    """Connect to ``config.ray_address`` (or start a local Ray) unless already connected."""
    ray = import_ray()
    if not ray.is_initialized():
        logger.info("connecting to Ray at %s", config.ray_address or "a new local instance")
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
    return ray


def _call_with_factory(factory: Callable[[], Callable[[Any], Any]], item: Any) -> Any:
    return factory()(item)


def ray_error(ray: Any, err: Exception) -> str:
    """The message of a failed Ray call: the task's own exception, or why its worker died."""
    if isinstance(err, ray.exceptions.RayTaskError):
        cause = err.cause if err.cause is not None else err
        return describe_error(cause)
    return f"WorkerDied: {describe_error(err)}"


def map_ray_tasks(
    factory: Callable[[], Callable[[T], R]], items: list[T], config: ExecutorConfig
) -> Iterator[TaskResult[T, R]]:
    """Ray tasks (Ray itself retries a task whose worker died, ``max_retries`` times), with at
    most a few tasks per cluster CPU in flight so millions of inputs do not flood the driver."""
    ray = ensure_ray(config)
    remote = ray.remote(max_retries=config.max_retries, retry_exceptions=False)(_call_with_factory)
    factory_ref = ray.put(factory)
    window = max(4, 4 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, T] = {}
    next_item = 0
    while pending or next_item < len(items):
        while next_item < len(items) and len(pending) < window:
            pending[remote.remote(factory_ref, items[next_item])] = items[next_item]
            next_item += 1
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        item = pending.pop(ref)
        try:
            yield TaskResult(item, ray.get(ref))
        except ray.exceptions.RayError as err:
            yield TaskResult(item, error=ray_error(ray, err))


class StatefulWorker:
    """Actor body: builds the per-item function once, then applies it to each item sent."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]) -> None:
        self.setup_error: str | None = None
        try:
            self.fn = factory()
        except Exception as err:  # reported per item instead of an actor that never starts
            self.setup_error = f"worker setup failed: {describe_error(err)}"

    def ready(self) -> bool:
        """Answers once the actor has started (again, after Ray restarted it)."""
        return True

    def run(self, item: Any) -> Any:
        """Apply the per-item function to one item."""
        if self.setup_error is not None:
            raise RuntimeError(self.setup_error)
        return self.fn(item)


def actor_resources(ray: Any, config: ExecutorConfig) -> tuple[int, dict[str, float]]:
    """(number of actors, Ray resources of each): one per GPU if the cluster has GPUs, else
    one per CPU; ``config.workers`` overrides the count."""
    cluster = ray.cluster_resources()
    gpus = int(cluster.get("GPU", 0))
    if gpus:
        return config.workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    return config.workers or max(1, int(cluster.get("CPU", 1))), {"num_cpus": 1}


def map_actors(
    factory: Callable[[], Callable[[T], R]], items: list[T], config: ExecutorConfig
) -> Iterator[TaskResult[T, R]]:
    """Yield each item's result from a pool of actors, in completion order, never raising.

    Args:
        factory: Picklable zero-argument callable, run once in every actor (and again when Ray
            restarts a dead actor), returning the per-item function.
        items: The inputs (picklable); each comes back exactly once.
        config: Ray address, actor count (``workers``) and retry bound (``max_retries``).
    """
    ray = ensure_ray(config)
    count, resources = actor_resources(ray, config)
    count = min(count, len(items))
    actor_class = ray.remote(max_restarts=-1, max_task_retries=0, **resources)(StatefulWorker)
    factory_ref = ray.put(factory)
    actors = [actor_class.remote(factory_ref) for _ in range(count)]
    logger.info("Ray: %d actor(s) with %s each for %d item(s)", count, resources, len(items))
    try:
        yield from _dispatch(ray, actors, items, config.max_retries)
    finally:
        for actor in actors:
            ray.kill(actor)


MAX_READY_CALLS = 30
"""Readiness calls to a dead actor before it is given up (each waits for Ray's restart)."""


def _dispatch(
    ray: Any, actors: list[Any], items: list[T], max_retries: int
) -> Iterator[TaskResult]:
    """One item per idle actor; a dead actor's item is retried up to ``max_retries`` times.

    An actor that died holding an item rejoins the pool only once it answers again: until Ray
    has noticed the death, a call sent to it fails at once, so a retry sent straight back to it
    (the only idle actor, or the one just freed) was spent on a corpse, and the item failed
    with retries left (seen under load in CI)."""
    queue = list(range(len(items)))
    queue.reverse()  # pop() from the end keeps the input order
    attempts = [0] * len(items)
    running: dict[Any, tuple[int, Any]] = {}
    restarting: dict[Any, tuple[Any, int]] = {}  # readiness call → (dead actor, calls so far)
    idle = list(actors)
    while running or (queue and (restarting or idle)):
        while queue and idle:
            index, actor = queue.pop(), idle.pop()
            attempts[index] += 1
            running[actor.run.remote(items[index])] = (index, actor)
        (ref,), _ = ray.wait([*running, *restarting], num_returns=1)
        if ref in restarting:
            actor, calls = restarting.pop(ref)
            try:
                ray.get(ref)
                idle.append(actor)
            except ray.exceptions.RayError:
                if calls < MAX_READY_CALLS:  # not restarted yet: ask again
                    restarting[actor.ready.remote()] = (actor, calls + 1)
            continue
        index, actor = running.pop(ref)
        try:
            result = TaskResult(items[index], ray.get(ref))
            idle.append(actor)
        except ray.exceptions.RayActorError as err:
            restarting[actor.ready.remote()] = (actor, 1)
            if attempts[index] > max_retries:
                result = TaskResult(
                    items[index],
                    error=f"WorkerDied: the actor died on each of "
                    f"{attempts[index]} tries ({type(err).__name__})",
                )
            else:
                logger.warning("an actor died while holding item %d; retrying it", index)
                queue.append(index)
                continue
        except ray.exceptions.RayError as err:
            idle.append(actor)
            result = TaskResult(items[index], error=ray_error(ray, err))
        yield result
    for index in reversed(queue):  # every actor is gone for good
        yield TaskResult(items[index], error="WorkerDied: no actor could be restarted")
