"""Run the build: host tools, then every stage of stage-scripts/ in order, then the manifest.

Every stage, step and action logs Begin/End with its path and duration. A failure names the
action and the log line, so the last Begin line in the log is always the culprit.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from image import ansible, host, log, manifest, stagecache
from image.chroot import run_in_chroot
from image.config import REPO_DIR, BuildConfig
from image.errors import BuildError, ConfigError, StepFailed
from image.stages import Action, actions, playbooks, stage_dirs, step_dirs, unknown_files


def _label(path: Path) -> str:
    return str(path.relative_to(REPO_DIR)) if REPO_DIR in path.parents else str(path)


def run_action(cfg: BuildConfig, action: Action, env: dict[str, str]) -> None:
    if action.kind == "packages":
        log.info(f"  {_label(action.path)}: installed by the bootstrap", terminal=False)
    elif action.kind == "run.sh":
        log.run(["sh", "-e", str(action.path)], env=env, cwd=action.path.parent)
    elif action.kind == "run-chroot.sh":
        run_in_chroot(cfg.rootfs, action.path, env)
    elif action.kind == "ansible":
        ansible.apply(cfg, playbooks(action.path, cfg.values))


def _echo_step_messages(first_line: int) -> None:
    """Show on the terminal the progress lines a step's Python module logged (not commands)."""
    path = log.log_path()
    if path is None:
        return
    lines = path.read_text(errors="replace").splitlines()[first_line:]
    for line in lines:
        if line.startswith("[") and "] $ " not in line and "] " in line:
            print("    " + line.split("] ", 1)[1], flush=True)


def restore_cached_stages(cfg: BuildConfig, point: stagecache.CachePoint,
                          durations: dict[str, float]) -> bool:
    """Restore the rootfs after `point.stage` from the stage cache; False on a miss."""
    started = time.monotonic()
    log.info(f"Begin stage cache {point.entry(cfg).name}")
    if not stagecache.restore(cfg, point):
        log.info(f"End stage cache: miss, running {_label(point.covered[0])} to "
                 f"{_label(point.stage)} and saving the result")
        return False
    durations["stage-cache-restore"] = round(time.monotonic() - started, 1)
    for stage in point.covered:
        log.info(f"Skip {_label(stage)} (restored from the stage cache)")
    log.info(f"End stage cache: hit ({durations['stage-cache-restore']:.0f} s)")
    return True


def run_stages(cfg: BuildConfig, durations: dict[str, float]) -> None:
    stages = stage_dirs(cfg)
    point = stagecache.cache_point(cfg, stages)
    restored = point is not None and restore_cached_stages(cfg, point, durations)
    for stage in stages:
        if restored and stage in point.covered:
            continue
        if (stage / "SKIP").exists():
            log.info(f"Skip {_label(stage)} (SKIP file)")
            continue
        log.info(f"Begin {_label(stage)}")
        stage_started = time.monotonic()
        for step in step_dirs(stage):
            if (step / "SKIP").exists():
                log.info(f"  Skip {_label(step)} (SKIP file)")
                continue
            for stray in unknown_files(step):
                log.info(f"  [WARN] ignored {_label(stray)}: not a known step file kind")
            step_started = time.monotonic()
            log.info(f"  Begin {_label(step)}")
            env = cfg.environ()
            env.update(STEP_DIR=str(step), STAGE_DIR=str(stage), BUILD_LOG=str(log.log_path()))
            for action in actions(step):
                first_line = log.line_count()
                try:
                    run_action(cfg, action, env)
                    _echo_step_messages(first_line)
                except subprocess.CalledProcessError as exc:
                    raise StepFailed(_label(action.path), exc.returncode, log.line_count()) from exc
                except BuildError as exc:
                    raise StepFailed(_label(action.path), 1, log.line_count()) from exc
            durations[_label(step)] = round(time.monotonic() - step_started, 1)
            log.info(f"  End {_label(step)} ({durations[_label(step)]:.0f} s)")
        durations[_label(stage)] = round(time.monotonic() - stage_started, 1)
        log.info(f"End {_label(stage)} ({durations[_label(stage)]:.0f} s)")
        if point is not None and stage == point.stage:
            saving = time.monotonic()
            stagecache.save(cfg, point)
            durations["stage-cache-save"] = round(time.monotonic() - saving, 1)


def build(cfg: BuildConfig, *, install_host_tools: bool = True) -> Path:
    """Build the image; returns the manifest path. Raises BuildError subclasses."""
    if os.geteuid() != 0:
        raise ConfigError("the image build needs root (mmdebstrap --mode=root, chroot, mounts)")
    cfg.deploy_dir.mkdir(parents=True, exist_ok=True)
    log.open_log(cfg.deploy_dir / "build.log")
    log.info(f"Build {cfg.basename} (commit {cfg['GIT_COMMIT']}), log {log.log_path()}")
    started = time.monotonic()
    durations: dict[str, float] = {}
    if install_host_tools:
        log.info("Begin host tools")
        host.prepare(cfg["ARCH"])
        durations["host-tools"] = round(time.monotonic() - started, 1)
    run_stages(cfg, durations)
    durations["total"] = round(time.monotonic() - started, 1)
    path = manifest.write(cfg, durations)
    log.info(f"Build finished in {durations['total']:.0f} s: {path}")
    for name in sorted(p.name for p in cfg.deploy_dir.glob(f"{cfg.basename}*")):
        log.info(f"  deploy/{name}")
    (cfg.deploy_dir / "build-durations.json").write_text(json.dumps(durations, indent=2))
    return path
