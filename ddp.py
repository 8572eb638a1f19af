"""
ddp.py: BCR on K processes, `torchrun --nproc_per_node K bcr.py ...`, in plain torch.distributed.

Data parallel, and exactly the one-process computation split in K:
  - every rank draws the same P groups (same seed) and keeps a contiguous share of P/K prompts with
    their whole groups of G rollouts, so the advantages (within a group) never cross ranks;
  - rollouts are seeded per prompt, so a prompt's completions do not depend on which rank has it;
  - each rank's loss uses the global normaliser (the token count of all ranks), so the sum of the
    ranks' gradients (sum_grads, one all-reduce) is the gradient of the whole batch; then every rank
    clips the same gradient and takes the same optimizer step, and the weights stay equal;
  - rank 0 evaluates, logs and checkpoints; the others wait at a barrier.
Without torchrun (no WORLD_SIZE in the environment) nothing here starts a process group.
Models that do not fit one GPU would need FSDP (one unshard per rollout, not per decode step): not here.
"""
import os

import torch
import torch.distributed as dist


def setup(device):
    """(rank, world size, device): joins the process group under torchrun, else (0, 1, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world, device


def active():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def share(items, rank, world):
    """This rank's contiguous share of items (len(items) must divide by world)."""
    n = len(items) // world
    return items[rank * n:(rank + 1) * n]


def total(x):
    """The sum of a number over the ranks."""
    if not active():
        return x
    t = torch.tensor(float(x), dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.item()


def gather(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def sum_grads(params):
    """grad <- sum over the ranks of grad, as one flat all-reduce."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def barrier():
    if active():
        dist.barrier()
