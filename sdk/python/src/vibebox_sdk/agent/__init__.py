"""The orchestrator: many sandboxes in parallel for AI agents (docs/agents.md).

from vibebox_sdk.agent import VibeBoxAgent
agent = VibeBoxAgent(max_parallel_sandboxes=10)
results = agent.map(items, fn, parallelism=3, template="node-20")    # fn(item, sandbox)
"""

from .aio import AsyncVibeBoxAgent
from .context import Context
from .core import AgentTask, Orchestrator, VibeBoxAgent, WorkerPool
from .results import TaskFailedError, TaskResult, Update

__all__ = [
    "AgentTask",
    "AsyncVibeBoxAgent",
    "Context",
    "Orchestrator",
    "TaskFailedError",
    "TaskResult",
    "Update",
    "VibeBoxAgent",
    "WorkerPool",
]
