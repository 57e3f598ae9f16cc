"""The epoch loop under torch.distributed (what torchrun sets up): 2 CPU processes, gloo."""

import json
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        from tests.training.test_training_loop import make_fit

        fit = make_fit(out)
        result = fit.run()
        # DDP keeps replicas identical: every rank ends with the same weights and masks.
        flat = torch.cat([p.detach().flatten() for p in fit.model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        assert all(torch.equal(gathered[0], g) for g in gathered)
        assert len(result.history) == 3
    finally:
        dist.destroy_process_group()


def test_fit_under_two_process_ddp_keeps_replicas_equal_and_writes_once(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    history = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["val_top1"] >= 0 and sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "history.json", "last.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 3
