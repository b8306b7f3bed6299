"""The run folder as training leaves it: claimed for one run at a time, its checkpoints (the newest
intact one to resume from, broken ones moved aside), and a full disk named with the checkpoint to
resume from.

    sftflow train sftflow.yaml --resume      # pick_checkpoint; --overwrite: claim_run_dir clears it
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sftflow.errors import SftflowError
from sftflow.io import atomic_write_text

RUN_OUTPUTS = ("model", "checkpoints", "eval", "metrics.jsonl", "train_summary.json", "loss_curve.png", "config.yaml",
               "chat_template.jinja", "versions.json", "tensorboard", "mlruns", "wandb")


def disk_full_message(run_dir: Path) -> str:
    """One line for a full disk: which checkpoint was being saved, where, and the one to --resume from."""
    import shutil

    ckpts = checkpoints(run_dir)
    cut = ckpts[-1] if ckpts and checkpoint_problem(ckpts[-1]) else None  # the save the disk cut short
    where = f"saving {cut.name} in {cut.parent}" if cut else f"writing {run_dir}"
    free = shutil.disk_usage(run_dir).free / 2**20
    good = pick_checkpoint(run_dir, log=lambda message: None, move_aside=False)  # --resume says which it skips
    kept = f"the last good checkpoint is {good}" if good else "no checkpoint was complete"
    return (f"train: no space left on the device while {where} ({free:,.0f} MiB free there now); {kept}: free "
            "some space and continue with --resume")


# What an interrupted training writes before its first checkpoint; cleared when the folder is used again.
INTERRUPTED_OUTPUTS = ("checkpoints", "metrics.jsonl", "loss_curve.png")


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool, log) -> None:
    """A folder with a previous run's model or a complete checkpoint is continued (--resume) or replaced
    (--overwrite), never trained into silently: its checkpoints would mix with the new ones. A run
    interrupted before its first checkpoint left nothing to continue: its folder is simply used again."""
    previous = (["model"] if (run_dir / "model").exists() else []) + (
        ["checkpoints"] if any(c.joinpath("trainer_state.json").is_file() for c in checkpoints(run_dir)) else [])
    if previous and not (resume or overwrite):
        raise SftflowError(f"{run_dir} already holds a run ({' and '.join(previous)}); pass --resume to continue "
                           "it, --overwrite to replace it, or set another `name` in the config")
    if overwrite:
        if _remove(run_dir, RUN_OUTPUTS):
            log(f"train: --overwrite: removed the previous run's outputs from {run_dir}")
    elif not previous and _remove(run_dir, INTERRUPTED_OUTPUTS):
        log(f"train: {run_dir} holds a run interrupted before its first checkpoint; starting it again")


def _remove(run_dir: Path, names: tuple[str, ...]) -> bool:
    import shutil

    found = [run_dir / name for name in names if (run_dir / name).exists()]
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return bool(found)


def disk_full(err: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception chain; torch and safetensors re-wrap it in their own errors."""
    import errno

    seen = 0
    while err is not None and seen < 10:
        if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err)
        if "No space left on device" in text or "Disk quota exceeded" in text or "file write failed" in text:
            return True
        # torch's zip writer (torch.save) drops the errno of a failed write: it says "[enforce fail at
        # inline_container.cc:672] . unexpected pos 704 vs 598", caused by "basic_ios::clear: iostream error"
        # (what torch.save to /dev/full, where every write fails with ENOSPC, raises)
        if "inline_container.cc" in text and "unexpected pos" in text:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why a checkpoint folder must not be resumed from, or None when it is complete and intact.

    The Trainer writes trainer_state.json last, so its absence means a save was cut short. The
    weights (safetensors) must be as long as their header says; optimizer, scheduler and RNG
    states (torch zip archives) must pass their CRC check. Nothing is unpickled to find out.
    """
    import zipfile

    state = ckpt / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was cut short)"
    try:
        step = json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        return f"trainer_state.json unreadable ({type(err).__name__})"
    if not isinstance(step, int):
        return "trainer_state.json has no step"
    for f in sorted(ckpt.iterdir()):
        if f.suffix == ".safetensors":
            problem = _safetensors_problem(f)
        elif f.suffix in (".pt", ".pth", ".bin"):
            try:
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                problem = f"member {bad} fails its CRC check" if bad else None
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                problem = f"not a complete torch archive ({err})"
        else:
            continue
        if problem:
            return f"{f.name}: {problem}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "truncated"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return "truncated header"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return "corrupt header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + n + max(ends, default=0) != size:
        return f"{size} bytes, header says {8 + n + max(ends, default=0)} (truncated?)"
    return None


def checkpoints(run_dir: Path) -> list[Path]:
    """The Trainer's checkpoint folders, oldest step first."""
    found = [p for p in (run_dir / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def pick_checkpoint(run_dir: Path, log=print, move_aside: bool = True) -> str | None:
    """The newest intact checkpoint. Broken ones (a kill or full disk mid-save) are named, moved aside
    to checkpoints/broken-checkpoint-N so the Trainer's own rotation never picks them, and skipped.
    Under torchrun only rank 0 moves them; the other ranks reach the same choice without moving."""
    for ckpt in reversed(checkpoints(run_dir)):
        try:
            problem = checkpoint_problem(ckpt)
        except FileNotFoundError:  # moved aside by rank 0 meanwhile
            continue
        if problem is None:
            return str(ckpt)
        log(f"train: skipping {ckpt.name}: {problem}" + (f"; moved to broken-{ckpt.name}" if move_aside else ""))
        if move_aside:
            _move_aside(ckpt)
    return None


def _move_aside(ckpt: Path) -> None:
    """Rename a broken checkpoint to broken-checkpoint-N, replacing the broken copy of the same step an
    earlier failure left there: one step can fail to save again and again (a kill or a full disk each
    time), and its failed copies must neither block the rename nor pile up on a disk that may be full."""
    import shutil

    target = ckpt.with_name(f"broken-{ckpt.name}")
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    os.replace(ckpt, target)


def metrics_until(path: Path, step: int) -> float | None:
    """Keep metrics.jsonl's rows up to the checkpoint resumed from (the steps after it are trained and
    logged again) and return the validation loss measured before training, for the summary. A line cut
    short by a kill is dropped rather than merged with the next one."""
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                rows.append(row)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return next((r["eval_loss"] for r in rows if r["step"] == 0 and "eval_loss" in r), None)
