"""Push a finished run to the Hugging Face Hub again, without retraining or regenerating.

    python -m common.push runs/lora --hub_model_id OWNER/NAME            # token: HF_TOKEN or `hf auth login`
    python -m common.push runs/lora --hub_model_id OWNER/NAME --hub_private_repo true

For a run trained with --push_to_hub whose upload failed (no network, a wrong token, a full disk on the
way), or one trained without it. The upload folder (`RUN_DIR/hub_upload/`: the adapter or trained
tensors, the public run.json and the model card with its machine-readable results) is written again
from the run's own files, then sent; the run folder itself is not changed otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.cli import ArgumentParser, ConfigError, run
from .core.hub_access import is_hub_id
from .hub.publish import publish_run
from .runs.outputs import RUN_FILE
from .runs.transaction import ADAPTER_DIR


def make_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="A finished run's folder (adapter/, predictions_test.csv, run.json).")
    parser.add_argument("--hub_model_id", required=True, help="The model repo to create or update, OWNER/NAME.")
    parser.add_argument("--hub_token", default=None, help="Hub token; default: HF_TOKEN or the token that "
                        "`hf auth login` saved (never written to any file by this command).")
    parser.add_argument("--hub_private_repo", default=None, type=lambda v: v.lower() in ("1", "true", "yes"),
                        help="true: create the repo private (an existing repo keeps its visibility).")
    return parser


def check_run_dir(run_dir: Path) -> None:
    """A finished run: its run.json (written last, at the commit) and its trained weights."""
    for name in (RUN_FILE, ADAPTER_DIR):
        if not (run_dir / name).exists():
            raise ConfigError(f"{run_dir}: no {name}, so not a finished training run; give the folder a training "
                              "script wrote (its --output_dir), after it finished")


def main(argv: list[str] | None = None) -> str:
    args = make_parser().parse_args(argv)
    if not is_hub_id(args.hub_model_id) or args.hub_model_id.count("/") != 1:
        raise ConfigError(f"--hub_model_id {args.hub_model_id}: expected OWNER/NAME")
    run_dir = Path(args.run_dir)
    check_run_dir(run_dir)
    url = publish_run(run_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
    print(f"Pushed to the Hub: {url}", flush=True)
    return url


if __name__ == "__main__":
    sys.exit(run(main))
