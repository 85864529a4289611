"""DDP without a second process or a GPU: where collectives put their tensors, which device and backend a
rank picks, that a stop seen by one rank stops all, and that only rank 0 writes.

The training run below joins a real 1-process gloo group (so DistributedDataParallel works) but tells the
trainer it is rank `rank` of 2; torch.distributed's collectives are replaced by fakes that play the other
rank and assert each tensor lives on the backend's device and arrives through fastsam.train.distributed.
The helpers' NCCL branch runs on fake cuda tensors (FakeTensorMode), so no GPU is needed for it either.
"""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import fastsam.train.distributed as fdist
from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import ConfigError, config_from_dict
from fastsam.train.distributed import DistInfo, backend_for, collective_device

TRAIN_DIR = Path(fdist.__file__).parent


def test_collective_device_follows_the_backend():
    assert backend_for(torch.device("cuda", 1)) == "nccl"
    assert backend_for(torch.device("cpu")) == "gloo"
    assert collective_device(DistInfo(rank=5, world_size=8, local_rank=3, backend="nccl")) == torch.device("cuda", 3)
    assert collective_device(DistInfo(rank=1, world_size=2, local_rank=1, backend="gloo")) == torch.device("cpu")


def test_only_distributed_py_talks_to_torch_distributed():
    # The helpers are the one path to a collective: any other module importing torch.distributed could hand
    # NCCL a CPU tensor again.
    offenders = [str(p.relative_to(TRAIN_DIR)) for p in TRAIN_DIR.rglob("*.py")
                 if p.name != "distributed.py" and "torch.distributed" in p.read_text()]
    assert offenders == []


def test_setup_sets_the_local_gpu_before_joining_an_nccl_group(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: calls.append(("init", backend, timeout)))
    monkeypatch.setattr(dist, "get_rank", lambda: 3)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(dist, "get_backend", lambda: "nccl")
    launch = DistInfo(rank=3, world_size=4, local_rank=1, local_world_size=2)
    info = fdist.setup_distributed(launch, torch.device("cuda", 1), timeout_minutes=5)
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl", timedelta(minutes=5))]
    assert (info.rank, info.world_size, info.local_rank, info.backend) == (3, 4, 1, "nccl")

    calls.clear()
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    info = fdist.setup_distributed(launch, torch.device("cpu"))
    assert calls == [("init", "gloo", timedelta(minutes=30))]  # no GPU touched for a CPU run


def test_setup_without_torchrun_joins_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: pytest.fail("joined a group"))
    assert not fdist.setup_distributed(DistInfo(), torch.device("cpu")).distributed


def test_pick_device_gives_each_process_its_gpu(monkeypatch):
    from fastsam.train.trainer import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    second = DistInfo(rank=1, world_size=2, local_rank=1, local_world_size=2)
    for device in ("auto", "cuda"):
        assert pick_device(config_from_dict({"device": device}), second) == torch.device("cuda", 1)
    assert pick_device(config_from_dict({"device": "cuda:1"}), DistInfo()) == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="one GPU for the 2 processes of this node"):
        pick_device(config_from_dict({"device": "cuda:0"}), second)
    with pytest.raises(ConfigError, match="LOCAL_RANK 2 needs cuda:2 but 2 GPU"):
        pick_device(config_from_dict({"device": "auto"}), DistInfo(rank=2, world_size=3, local_rank=2, local_world_size=3))


def test_bad_launch_environment_and_timeout_are_named(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "zero")
    with pytest.raises(ValueError, match="LOCAL_RANK='zero' is not an integer"):
        fdist.launch_info()
    with pytest.raises(ConfigError, match="'ddp_timeout_minutes' must be > 0"):
        config_from_dict({"ddp_timeout_minutes": 0})


def test_reduce_sum_returns_to_the_callers_device(monkeypatch):
    seen = []

    def fake_all_reduce(tensor, op=None):
        seen.append(tensor.device)
        tensor.mul_(2)  # the other rank holds the same values

    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    sums = torch.tensor([1.0, 2.5], dtype=torch.float64)
    out = fdist.reduce_sum(sums, DistInfo(rank=0, world_size=2, backend="gloo"))
    assert seen == [torch.device("cpu")]
    assert out.tolist() == [2.0, 5.0] and sums.tolist() == [1.0, 2.5]  # the caller's tensor is left alone


class _Seen(Exception):
    """Raised by a fake collective after it recorded its tensor (a fake cuda tensor holds no value to return)."""


def test_helpers_hand_nccl_tensors_on_this_ranks_gpu(monkeypatch):
    # FakeTensorMode lets a CPU-only build create tensors that claim to live on cuda:1, so the NCCL branch of
    # every helper runs here: the fake collective records where its tensor lives.
    from torch._subclasses.fake_tensor import FakeTensorMode

    info = DistInfo(rank=3, world_size=4, local_rank=1, local_world_size=2, backend="nccl")
    seen = []

    def fake_all_reduce(tensor, op=None):
        seen.append((tensor.device, op))
        if op == dist.ReduceOp.MAX:
            raise _Seen  # any_rank would read the fake flag's value next

    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    monkeypatch.setattr(dist, "barrier", lambda **kw: seen.append(("barrier", kw)))
    with FakeTensorMode(allow_non_fake_inputs=True):
        out = fdist.reduce_sum(torch.zeros(5, dtype=torch.float64), info)
        assert out.device == torch.device("cpu")  # back where the caller's sums were
        with pytest.raises(_Seen):
            fdist.any_rank(True, info)
    fdist.barrier(info)
    gpu = torch.device("cuda", 1)
    assert seen == [(gpu, dist.ReduceOp.SUM), (gpu, dist.ReduceOp.MAX), ("barrier", {"device_ids": [1]})]


class FakePeer:
    """Collectives of a 2-rank group whose other rank holds the same sums and asks to stop at `stop_at_step`."""

    def __init__(self, info: DistInfo, stop_at_step: int):
        self.info, self.stop_at_step = info, stop_at_step
        self.calls: list[tuple] = []
        self.flag_syncs = 0

    def _check(self, name: str, tensor: torch.Tensor | None = None) -> None:
        caller = Path(sys._getframe(2).f_code.co_filename).resolve()  # who called torch.distributed
        assert caller == Path(fdist.__file__).resolve(), f"{name} called from {caller}, not through the helpers"
        if tensor is not None:
            assert tensor.device == collective_device(self.info), f"{name} got a tensor on {tensor.device}"

    def all_reduce(self, tensor, op=dist.ReduceOp.SUM, **_):
        self._check("all_reduce", tensor)
        self.calls.append(("all_reduce", op, tensor.dtype, tensor.numel()))
        if op == dist.ReduceOp.MAX:
            self.flag_syncs += 1  # one stop-flag sync per step
            if self.flag_syncs >= self.stop_at_step:
                tensor.fill_(1)
        else:
            tensor.mul_(2)

    def all_gather_object(self, out, value, **_):
        self._check("all_gather_object")
        self.calls.append(("all_gather_object",))
        out[:] = [dict(value) for _ in out]

    def barrier(self, **_):
        self._check("barrier")
        self.calls.append(("barrier",))


@pytest.fixture()
def one_process_group(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()
    torch.set_num_threads(before)


@pytest.mark.parametrize("rank", [0, 1])
def test_ddp_rank_collectives_stop_sync_and_rank0_writes(tmp_path, monkeypatch, one_process_group, rank):
    from fastsam.train import trainer
    from fastsam.train.graceful_stop import TrainingStopped

    root = generate_synthetic_dataset(tmp_path / "data", num_train=4, num_val=3, size=48, objects=(1, 2), seed=5)
    cfg = config_from_dict({
        "output_dir": str(tmp_path / "runs"), "train_img_dir": str(root / "train/images"),
        "train_mask_dir": str(root / "train/masks"), "val_img_dir": str(root / "val/images"),
        "val_mask_dir": str(root / "val/masks"), "img_size": 64, "batch_size": 2, "num_epochs": 2,
        "freeze": {"image_encoder": True, "prompt_encoder": True}, "num_val_overlays": 1, "device": "cpu",
    })
    info = DistInfo(rank=rank, world_size=2, local_rank=rank, local_world_size=2, backend="gloo")
    peer = FakePeer(info, stop_at_step=3)  # 2 steps per epoch: the peer stops inside epoch 2
    monkeypatch.setattr(trainer, "setup_distributed", lambda launch, device, timeout: info)
    for name in ("all_reduce", "all_gather_object", "barrier"):
        monkeypatch.setattr(dist, name, getattr(peer, name))

    with pytest.raises(TrainingStopped) as stopped:
        trainer.train(cfg)
    assert stopped.value.step == 3  # this rank had no signal of its own

    sums = [c for c in peer.calls if c[:2] == ("all_reduce", dist.ReduceOp.SUM)]
    # validation before training and after epoch 1 (the prompt task's 5 sums, then the image count, the total
    # loss and each loss term of the validation loss), epoch 1's logged losses
    from fastsam.train.tasks.prompt import PromptTask
    val_width = PromptTask.num_sums + 2 + len(PromptTask.loss_terms)
    assert [(c[2], c[3]) for c in sums] == [(torch.float64, val_width), (torch.float64, 1 + 4 + 1),
                                            (torch.float64, val_width)]
    assert peer.flag_syncs == 3 and ("barrier",) in peer.calls and ("all_gather_object",) in peer.calls
    written = sorted(p.name for p in (tmp_path / "runs").rglob("*") if p.is_file())
    if rank == 0:
        assert {"config.json", "metrics.jsonl", "best_model.pth", "latest_model.pth", "training_log.txt"} <= set(written)
        assert stopped.value.checkpoint == cfg.run_dir / "latest_model.pth"
    else:
        assert written == [] and not cfg.run_dir.exists()
        assert stopped.value.checkpoint is None


def test_an_error_on_this_rank_still_leaves_the_group(tmp_path, monkeypatch, one_process_group):
    from fastsam.train import trainer

    info = DistInfo(rank=1, world_size=2, local_rank=1, local_world_size=2, backend="gloo")
    monkeypatch.setattr(trainer, "setup_distributed", lambda launch, device, timeout: info)
    monkeypatch.setattr(trainer, "check_paths", lambda cfg: None)
    monkeypatch.setattr(trainer, "load_data", lambda cfg: None)  # the input checks made before joining the group
    monkeypatch.setattr(trainer, "build_student", lambda cfg: None)
    monkeypatch.setattr(trainer, "_run", lambda *a: (_ for _ in ()).throw(RuntimeError("boom on rank 1")))
    with pytest.raises(RuntimeError, match="boom on rank 1"):
        trainer.train(config_from_dict({"output_dir": str(tmp_path / "runs"), "device": "cpu"}))
    assert not dist.is_initialized()  # destroy_process_group ran: peers see this rank leave


@pytest.mark.slow  # two spawned processes import torch
def test_real_gloo_helpers_and_a_silent_peer_times_out(tmp_path):
    import multiprocessing

    import gloo_worker  # a small module: each spawned rank imports only it, torch and fastsam.train.distributed

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=gloo_worker.run_rank, args=(rank, str(tmp_path / "init"), results)) for rank in (0, 1)]
    for p in procs:
        p.start()
    answers = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert [a["sum"] for a in (answers[0], answers[1])] == [3.0, 3.0]
    assert answers[0]["stop"] is True and answers[1]["stop"] is True  # rank 1's request reached rank 0
    assert answers[0]["gathered"] == [{"rank": 0}, {"rank": 1}] == answers[1]["gathered"]
    assert answers[0]["lonely_collective"] == "raised"  # ddp_timeout_minutes bounds a wait on a dead peer


@pytest.mark.parametrize("length,world", [(5, 2), (1, 2), (7, 3)])
def test_validation_shards_count_each_sample_once(length, world):
    # DistributedSampler would pad 5 samples to 6 over 2 ranks; validation must not count the repeat.
    shards = [list(fdist.ShardSampler(length, DistInfo(rank=r, world_size=world))) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(fdist.ShardSampler(length, DistInfo(rank=r, world_size=world))) for r in range(world)] == \
        [len(s) for s in shards]


def test_a_rank_without_validation_images_still_joins_the_sum(monkeypatch):
    from types import SimpleNamespace

    from fastsam.train.validation import evaluate

    peer = torch.tensor([0.5, 0.25, 2.0, 0.1, 0.2], dtype=torch.float64)  # the other rank's validation sums
    monkeypatch.setattr(dist, "all_reduce", lambda tensor, op=None: tensor.add_(peer))
    task = SimpleNamespace(num_sums=5, metrics=lambda sums: sums.tolist())
    info = DistInfo(rank=1, world_size=2, local_rank=1, backend="gloo")
    metrics, previews = evaluate(task, torch.nn.Identity(), [], None, torch.device("cpu"), info)
    assert metrics == peer.tolist() and previews == []
