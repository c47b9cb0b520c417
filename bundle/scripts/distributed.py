# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Ending a torchrun process group so that its threads end while Python is still alive.

``dist.destroy_process_group()`` only drops the registry's reference to the group. A ``DistributedDataParallel``
wrapper keeps its own (``process_group``, and its C++ reducer and logger), and gloo's ``shutdown`` does nothing, so
after the call the group's worker threads (``pt_gloo_runloop``, ``gloo_tcp_loop``) run on until the interpreter
exits. A worker that then drops the last reference to a tensor of its last collective needs the GIL, which a
finalising interpreter no longer gives: the thread is unwound through C++ code that cannot be unwound and the
process dies with ``terminate called without an active exception`` (SIGABRT), rarely, more often under load.
:func:`end_distributed` releases the wrappers first, so the group is destroyed, and its threads joined, there.
"""

from __future__ import annotations

import gc
import logging
import weakref
from pathlib import Path

import torch
import torch.distributed as dist

__all__ = ["end_distributed", "process_group_threads"]

logger = logging.getLogger(__name__)

# What a DistributedDataParallel wrapper holds the group by: the attribute, and the C++ objects that hold it too.
_DDP_HOLDS = ("reducer", "logger", "process_group")


def process_group_threads() -> list[str]:
    """Names of this process's threads that belong to a gloo process group (Linux: ``/proc/self/task``; else [])."""
    names = []
    try:
        for task in Path("/proc/self/task").iterdir():
            name = (task / "comm").read_text(encoding="utf-8").strip()
            if "gloo" in name:
                names.append(name)
    except OSError:
        return []
    return sorted(names)


def end_distributed(*wrappers: torch.nn.Module) -> None:
    """Release ``wrappers`` (``DistributedDataParallel``) from the process group, then destroy it.

    For the end of a run (the configs' ``finalize``): the wrappers cannot communicate afterwards. Does nothing when
    no group is initialised. Logs a warning when something else still holds the group (its threads then outlive
    the call).

    Args:
        wrappers: the DDP modules built on the default group.
    """
    if not dist.is_initialized():
        return
    for wrapper in wrappers:
        for name in _DDP_HOLDS:
            if isinstance(wrapper, torch.nn.parallel.DistributedDataParallel) and hasattr(wrapper, name):
                setattr(wrapper, name, None)
    group = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    gc.collect()  # a reference cycle through the wrapper must not keep the group alive
    if group() is not None:
        logger.warning(
            "the process group is still referenced after destroy_process_group (threads alive: "
            f"{process_group_threads()}); the process may abort at exit."
        )
