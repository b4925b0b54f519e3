"""The ``mobile2dslr`` console script.

``fit | validate | test | predict`` go to LightningCLI (one config file plus
command-line overrides, ``--print_config``); the other commands are typed functions
parsed by jsonargparse. User errors end as one line on stderr and exit status 2.
"""

import os
import sys
import warnings
from pathlib import Path
from typing import Optional

from . import REPO_ROOT
from .errors import UserError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
# Typed commands: name → "module:function"; jsonargparse builds each one's options.
COMMANDS = {
    "enhance": "mobile2dslr.commands.enhance:enhance",
    "import-dped": "mobile2dslr.commands.import_dped:import_dped",
    "recommend": "mobile2dslr.commands.recommend:recommend",
    "evaluate": "mobile2dslr.commands.evaluate:evaluate",
    "export-dnd": "mobile2dslr.commands.export_dnd:export_dnd",
}

USAGE = """usage: mobile2dslr COMMAND [options]

Train and run the phases (LightningCLI; `mobile2dslr COMMAND --help` lists every option):
  fit         train a phase:       mobile2dslr fit --config configs/mpse/phase1_dped.yaml
                                   (MDIE: configs/mdie/{intrinsic_pretrain,self_supervised,joint}.yaml)
  validate    score a checkpoint on the validation set (--ckpt_path)
  test        score a checkpoint on the test set (--ckpt_path)
  predict     enhance the DataModule's predict set (--ckpt_path)

Use trained models:
  enhance     enhance a photo or a folder:  mobile2dslr enhance IN OUT --ckpt model.ckpt
              (phase 2: [--mode optimize --reference R.jpg | --gallery PRO/]; phase 3: --postprocess on|off)
  import-dped official DPED weights → phase-1 checkpoint: mobile2dslr import-dped SOURCE OUT.ckpt
  evaluate    PSNR/SSIM/LPIPS vs input, HE, gamma:  mobile2dslr evaluate DATA OUT [--ckpt A.ckpt --ckpt+ name=B.ckpt]
  export-dnd  the DND benchmark's boxes → a submission:  mobile2dslr export-dnd DND_ROOT OUT --ckpt model.ckpt
  recommend   style references from a gallery:  mobile2dslr recommend PHOTO_OR_DIR GALLERY [--ckpt recommender.ckpt] [--csv refs.csv]

Configs are YAML files naming classes by class_path; override any value on the
command line (--model.lr 1e-4, --trainer.max_steps 200, --data configs/data/dped.yaml).
Relative `configs/...` paths also resolve from the repository root.
"""

_CONFIG_OPTIONS = ("--config", "--model", "--data", "--trainer")


def resolve_config_paths(argv: list[str], root: Path = REPO_ROOT) -> list[str]:
    """Let ``configs/...`` arguments work from any folder: resolve them from the repo root.

    A YAML path that exists relative to the current folder is left as it is.
    """
    resolved = []
    expect_path = False
    for arg in argv:
        option, eq, value = arg.partition("=")
        if expect_path:
            resolved.append(_from_root(arg, root))
        elif eq and option in _CONFIG_OPTIONS:
            resolved.append(f"{option}={_from_root(value, root)}")
        else:
            resolved.append(arg)
        expect_path = not eq and arg in _CONFIG_OPTIONS
    return resolved


def _from_root(value: str, root: Path) -> str:
    if value.endswith((".yaml", ".yml")) and not Path(value).exists() and (root / value).is_file():
        return str(root / value)
    return value


def run_lightning(argv: list[str], run: bool = True):
    """Run a LightningCLI subcommand on ``argv`` (which starts with the subcommand); returns the CLI.

    With ``run=False`` the model, data and trainer are only built (``cli.model``,
    ``cli.datamodule``, ``cli.trainer``), e.g. for the benchmarks.
    """
    # Imported here so `mobile2dslr --help` stays instant.
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningCLI

    import lightning_modules  # noqa: F401  (registers the filter for its warnings)
    from callbacks import LRHalving, Performance

    class Mobile2DSLRCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # A top-level group, so `--lr_halving.every_n_iterations 5000` works from the
            # command line (items of trainer.callbacks cannot be addressed one by one).
            parser.add_lightning_class_args(LRHalving, "lr_halving")
            # Likewise the speed switches (--performance.channels_last true) and the batch report.
            parser.add_lightning_class_args(Performance, "performance")

        def after_fit(self) -> None:
            # ModelCheckpoint writes last.ckpt only every N steps or validations: make it the
            # final state, so a run stopped by max_steps continues exactly with a larger one.
            for callback in self.trainer.checkpoint_callbacks:
                if callback.save_last and callback.dirpath and not self.trainer.interrupted:
                    last = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                    if getattr(callback, "_last_global_step_saved", -1) != self.trainer.global_step or not last.exists():
                        self.trainer.save_checkpoint(last)

    os.environ.setdefault("WANDB_SILENT", "true")
    # Frozen feature extractors (VGG) stay in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Our last.ckpt is meant to hold the weights after the step (what a resume needs).
    warnings.filterwarnings("ignore", message=r"Using ModelCheckpoint with manual optimization and every_n_train_steps")
    # We pass the (path-resolved) argv explicitly, so LightningCLI's args-vs-sys.argv warning is moot.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    try:
        return Mobile2DSLRCLI(
            pl.LightningModule,
            pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "omegaconf"},
            args=argv if run else argv[1:],
            run=run,
        )
    finally:
        if run:
            _finish_wandb_run()


def _finish_wandb_run() -> None:
    """Close the wandb run a subcommand opened: WandbLogger leaves it open, and the next
    run in the same process (a script or notebook calling main twice, the tests) would log into it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def run_command(name: str, argv: list[str]) -> None:
    """Run a typed command (a documented function) with ``argv`` as its options."""
    import importlib

    from jsonargparse import CLI

    module, _, function = COMMANDS[name].partition(":")
    status = CLI(getattr(importlib.import_module(module), function), args=argv, prog=f"mobile2dslr {name}")
    if isinstance(status, int) and status:
        sys.exit(status)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``mobile2dslr`` console script."""
    argv = resolve_config_paths(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command = argv[0]
    try:
        try:
            if command in LIGHTNING_COMMANDS:
                run_lightning(argv)
            elif command in COMMANDS:
                run_command(command, argv[1:])
            else:
                print(f"mobile2dslr: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
                sys.exit(2)
        except ValueError as err:
            # jsonargparse reports a UserError raised while it builds a class as a ValueError
            # listing every Union member it tried: show the user's message alone.
            raise _user_error_in(err) or err
    except UserError as err:
        print(f"mobile2dslr: error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as err:
        print(f"mobile2dslr: training stopped: {_one_line(err)}", file=sys.stderr)
        sys.exit(3)
    except OSError as err:
        if err.filename is None:
            raise  # not about a file the user can do something about: a bug, show it whole
        print(f"mobile2dslr: error: {err.filename}: {err.strerror}", file=sys.stderr)
        sys.exit(2)


def _user_error_in(err: BaseException) -> Optional[UserError]:
    """The UserError that caused ``err``, following ``__cause__``/``__context__``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _one_line(err: Exception) -> str:
    """The user's message, also when a DataLoader worker wrapped it in its traceback."""
    text = str(err)
    if "Original Traceback" in text:  # re-raised by torch in the main process
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if last.startswith(("mobile2dslr.errors.", "FloatingPointError")) else last
    return " ".join(text.split("\n")).strip()


if __name__ == "__main__":
    main()
