"""Multi-process data-parallel training: PyTorch DDP in processes started by ``torchrun``.

``harkit train --nproc N`` re-runs the same command under ``python -m torch.distributed.run``
(:func:`launch`); in each worker :func:`process_group_from_env` joins the process group that
torchrun describes in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``...). The :class:`~harkit.training.trainer.Trainer` then wraps its model in
``DistributedDataParallel`` and gives each rank its share of every global batch; rank 0 alone
writes the run directory. Outside a process group every helper here is a no-op (rank 0 of 1).

Backends: gloo for CPU tensors; when CUDA (and NCCL) is available the group is
``cpu:gloo,cuda:nccl``, so ``train.device=cuda`` trains over NCCL, each process on
``cuda:LOCAL_RANK``, while the small CPU messages (metrics, decisions) still go over gloo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from harkit.errors import ConfigError

T = TypeVar("T")

# Set by :func:`launch` in the workers' environment, so their ``harkit train`` trains instead
# of launching again; and the launching command line (JSON), which the run records.
CHILD_ENV = "HARKIT_DDP_CHILD"
COMMAND_ENV = "HARKIT_DDP_COMMAND"


# -- who am I --------------------------------------------------------------------------------
def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes in the group (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, the one process that logs and writes files (and outside DDP)."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank on its node, as torchrun sets it (0 when not launched by it)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def env_rank() -> int:
    """The global rank torchrun gave this process (0 when not launched by it); valid before
    and after the process group exists."""
    return int(os.environ.get("RANK", "0"))


def under_torchrun() -> bool:
    """True in a worker process started by torchrun (or by :func:`launch`)."""
    return CHILD_ENV in os.environ or "TORCHELASTIC_RUN_ID" in os.environ


# -- process group ---------------------------------------------------------------------------
@contextmanager
def process_group_from_env() -> Iterator[bool]:
    """Join the process group torchrun describes in the environment, for the ``with`` block.

    Does nothing (yields False) when the process was not started by torchrun with more than
    one worker, or when a process group already exists (its owner manages it). Otherwise
    yields True and destroys the group on exit.
    """
    if (not dist.is_available() or dist.is_initialized()
            or int(os.environ.get("WORLD_SIZE", "1")) <= 1):
        yield False
        return
    backend = "gloo"
    if torch.cuda.is_available() and dist.is_nccl_available():
        if local_rank() < torch.cuda.device_count():
            torch.cuda.set_device(local_rank())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend)  # env:// rendezvous set up by torchrun
    try:
        yield True
        # every rank is done with the group before any tears it down (a rank that destroyed
        # its gloo group while another was still sending aborted once in CI)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def rank_device(device: str) -> str:
    """The device this rank trains on: ``cuda:LOCAL_RANK`` for a ``cuda[:N]`` config under
    DDP (one GPU per process, whatever index the config names), else ``device`` itself."""
    if not is_distributed() or not device.startswith("cuda"):
        return device
    n = torch.cuda.device_count()
    if local_rank() >= n:
        raise ConfigError(f"train.device={device!r}: local rank {local_rank()} needs a GPU of "
                          f"its own but this node has {n}; start at most {n} processes per node")
    return f"cuda:{local_rank()}"


def check_batch_size(batch_size: int, world: int) -> None:
    """Refuse a global ``train.batch_size`` that ``world`` processes cannot share equally.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``world``.
    """
    if batch_size % world:
        raise ConfigError(f"train.batch_size={batch_size} is the global batch size: it must be "
                          f"divisible by the {world} processes (e.g. "
                          f"{max(batch_size // world, 1) * world})")


def check_trainable(model: nn.Module) -> None:
    """Refuse a closed-form model (its ``fit_init`` is the whole training) under DDP.

    Raises:
        ConfigError: ``model.closed_form`` is true.
    """
    if getattr(model, "closed_form", False):
        raise ConfigError(f"model {type(model).__name__} is fitted in closed form (fit_init is "
                          "the whole training): train it in one process, without --nproc")


# -- collectives (identity outside a process group) ------------------------------------------
def _coll_device() -> torch.device:
    """Where small tensors for collectives live: CPU unless the group is NCCL only."""
    backend = str(dist.get_backend())
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" \
        else torch.device("cpu")


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` from rank ``src`` on every rank (picklable objects; ``obj`` itself outside DDP)."""
    if not is_distributed():
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 only and sent to every rank (just ``fn()`` outside DDP)."""
    if not is_distributed():
        return fn()
    value = broadcast_object(fn() if is_main() else None)
    return value  # type: ignore[return-value]


def broadcast_floats(values: Sequence[float], src: int = 0) -> list[float]:
    """Rank ``src``'s ``values`` on every rank (float64, so nothing is rounded)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_coll_device())
    dist.broadcast(t, src=src)
    return [float(v) for v in t.cpu()]


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_coll_device())
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce: the gradient of a sum over ranks is the summed gradient."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


# -- models ----------------------------------------------------------------------------------
class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are over the global batch of all ranks.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this one runs anywhere (two small
    differentiable all-reduces per layer and step: the sums, then the squared deviations from
    the global mean). Outside training, or outside a process group, it is plain BatchNorm.
    Input ``(N, C, *)``; parameters and buffers are those of ``nn.BatchNorm1d``, so state
    dicts are interchangeable with it.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, *), got {input.dim()}D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        self._check_input_dim(input)
        x = input.float()  # statistics in float32, also under bf16 / fp16 autocast
        shape = [1, -1] + [1] * (x.dim() - 2)  # per-channel values broadcast over (N, C, *)
        dims = [0, *range(2, x.dim())]
        local_n = x.numel() // x.size(1)
        sums = torch.cat([x.sum(dims), x.new_tensor([float(local_n)])])
        sums = _AllReduceSum.apply(sums)
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n  # biased, as BatchNorm
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm layer synchronised over the ranks (in place where
    possible): ``torch.nn.SyncBatchNorm`` on CUDA, :class:`SyncBatchNorm` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, (SyncBatchNorm, nn.SyncBatchNorm)):
        bn = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                           module.track_running_stats, device=device)
        bn.load_state_dict(module.state_dict())
        bn.train(module.training)
        return bn
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child, device)
        if new is not child:
            module.add_module(name, new)
    return module


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (its parameters are rank 0's from here on)."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index],
                                       output_device=device.index)
    return DistributedDataParallel(model)


# -- launching -------------------------------------------------------------------------------
def torchrun_command(argv: Sequence[str], nproc: int, *, nnodes: int = 1,
                     node_rank: int | None = None, rdzv_endpoint: str | None = None,
                     rdzv_backend: str = "c10d", rdzv_id: str | None = None,
                     extra: Sequence[str] = ()) -> list[str]:
    """The ``python -m torch.distributed.run ... -m harkit.cli`` command running ``argv``.

    One node without an endpoint: ``--standalone`` (a local rendezvous on a free port).
    Several nodes: the same command on every node, meeting at ``rdzv_endpoint``
    (``host:port`` of one of them) under the job id ``rdzv_id``.

    Example:
        >>> torchrun_command(["train", "--epochs", "2"], 2)[3:]
        ['--nproc-per-node=2', '--standalone', '-m', 'harkit.cli', 'train', '--epochs', '2']
    """
    if nproc < 1 or nnodes < 1:
        raise ConfigError(f"--nproc {nproc} --nnodes {nnodes}: both must be >= 1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ConfigError(f"--nnodes {nnodes}: multi-node training needs --rdzv-endpoint "
                              "HOST:PORT (a host all nodes can reach)")
        cmd += [f"--nnodes={nnodes}", f"--rdzv-backend={rdzv_backend}",
                f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id or 'harkit'}"]
        if node_rank is not None:
            cmd.append(f"--node-rank={node_rank}")
    return [*cmd, *extra, "-m", "harkit.cli", *argv]


def launch(argv: Sequence[str], nproc: int, command: Sequence[str] | None = None,
           **kw: Any) -> int:
    """Run ``harkit <argv>`` in ``nproc`` torchrun workers (see :func:`torchrun_command`);
    return torchrun's exit status. The workers get :data:`CHILD_ENV`, so they do not launch
    again, ``command`` (the command line to record) in :data:`COMMAND_ENV`, and
    ``OMP_NUM_THREADS=1`` unless it is set (torchrun's own default)."""
    import json

    cmd = torchrun_command(argv, nproc, **kw)
    env = {**os.environ, CHILD_ENV: "1", COMMAND_ENV: json.dumps(list(command or argv))}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(cmd, env=env, check=False).returncode
