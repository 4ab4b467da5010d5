"""Sharding across processes with torch.distributed, for runs launched by `torchrun` or
`accelerate launch` (both set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT). A plain `spiral bench
run` is world size 1 and never touches torch.distributed.

The collectives carry only small Python objects (the pending work list, finished results), so the
process group is gloo even when the world models run on GPUs: no device has to be pinned for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

# Ranks wait for the slowest one at the end; a long benchmark must not trip gloo's 30-minute default.
TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        """rank 0's `obj`, on every rank."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list | None:
        """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def init_dist() -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    import torch.distributed as dist

    if dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    dist.init_process_group("gloo", timeout=TIMEOUT)
    return Dist(dist.get_rank(), dist.get_world_size(), owns_group=True)
