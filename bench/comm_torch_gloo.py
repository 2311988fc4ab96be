#!/usr/bin/python3
"""torch.distributed's gloo backend, timed the way bench/comm_bench.cc times basin's comm layer.

Used by basin_comm_bench as the reference: the same ranks (forked local processes on loopback),
the same float32 sizes and iteration counts, one warm-up allreduce per size, then rank 0 times
each allreduce back to back. Prints one JSON object:
  {"torch": "1.13.0", "ranks": 4, "results": [{"bytes": 4096, "seconds": [...]}, ...]}

usage: /usr/bin/python3 comm_torch_gloo.py RANKS BYTES:ITERS [BYTES:ITERS ...]
(Debian's python3-torch imports only under /usr/bin/python3.)
"""
import json
import queue as _queue
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def rank_main(rank, world, init_file, plan, queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    results = []
    for nbytes, iters in plan:
        t = torch.full((nbytes // 4,), float(rank + 1), dtype=torch.float32)
        dist.all_reduce(t)  # warm-up: connections, buffers
        dist.barrier()
        seconds = []
        for _ in range(iters):
            t0 = time.perf_counter()
            dist.all_reduce(t)
            seconds.append(time.perf_counter() - t0)
        results.append({"bytes": nbytes, "seconds": seconds})
    dist.barrier()
    if rank == 0:
        queue.put(results)
    dist.destroy_process_group()


def main():
    world = int(sys.argv[1])
    plan = [tuple(int(x) for x in arg.split(":")) for arg in sys.argv[2:]]
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        procs = [ctx.Process(target=rank_main, args=(r, world, init_file, plan, queue)) for r in range(world)]
        for p in procs:
            p.start()
        results = None
        while results is None:
            try:
                results = queue.get(timeout=1)
            except _queue.Empty:  # fail fast when a rank died instead of waiting forever
                if any(p.exitcode not in (None, 0) for p in procs):
                    for p in procs:
                        p.kill()
                    sys.exit("a rank failed: exit codes %s" % [p.exitcode for p in procs])
        for p in procs:
            p.join()
            if p.exitcode != 0:
                sys.exit("rank exited with %d" % p.exitcode)
    print(json.dumps({"torch": torch.__version__, "ranks": world, "results": results}))


if __name__ == "__main__":
    main()
