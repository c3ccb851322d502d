"""Training cost of models made of chained probes (pretraining -> training -> averaging), from the
CPU-minutes that ``reports/probes/NAME.csv`` recorded for each stage.

    .venv/bin/python scripts/chain_cost.py --cores 2 \\
        --chain synth-pretrain-lstm256 crnn-lstm256-synth-init swa-crnn-lstm256 \\
        --chain synth-pretrain crnn-all-synth-init swa-synth-init-lr3e-4 \\
        --chain crnn-all swa-crnn-all-lr3e-4

Each stage keeps the weights of its best dev epoch (what ``htr train`` writes to ``weights.pt``
and what the next stage's ``--init`` reads); ``NAME@E`` says that epoch E's weights were kept
instead.  Per stage the table gives the CPU-minutes as run and up to the kept epoch: the run had
its kept weights at that point, so the second figure is what reaching the model's dev CER cost,
the first what the run cost (its later epochs showed that the kept one was the best).  A stage
named in several chains (one pretraining under two members) counts once.

On N cores the chains run as one-thread trainings sharing the cores, so they take at least the
total over N and at least the longest chain: that bound is the hours printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import probe  # noqa: E402


class Stage(NamedTuple):
    name: str
    epochs: int
    kept_epoch: int
    kept_cer: float
    minutes_run: float
    minutes_to_kept: float


def parse_stage(spec: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@EPOCH`` -> (name, epoch or None for its best)."""
    name, _, epoch = spec.partition("@")
    if not epoch:
        return name, None
    if not epoch.isdigit() or int(epoch) < 1:
        raise ValueError(f"{spec}: the kept epoch after @ must be a positive whole number")
    return name, int(epoch)


def stage_cost(spec: str, probes: dict) -> Stage:
    name, epoch = parse_stage(spec)
    if name not in probes:
        raise ValueError(f"{name}: no {probe.REPORTS / (name + '.csv')} (probes recorded: {', '.join(sorted(probes)) or 'none'})")
    rows = probes[name][1]
    if epoch is None:
        kept = min(rows, key=lambda row: row["dev_cer"])
    else:
        matching = [row for row in rows if int(row["epoch"]) == epoch]
        if not matching:
            raise ValueError(f"{spec}: {name} recorded epochs 1-{int(rows[-1]['epoch'])}, not {epoch}")
        kept = matching[0]
    return Stage(name, int(rows[-1]["epoch"]), int(kept["epoch"]), kept["dev_cer"],
                 rows[-1]["cpu_minutes"], kept["cpu_minutes"])


def chain_costs(chains: list[list[str]], probes: dict) -> list[list[Stage]]:
    costed = [[stage_cost(spec, probes) for spec in chain] for chain in chains]
    kept: dict[str, int] = {}
    for stage in (stage for chain in costed for stage in chain):
        if kept.setdefault(stage.name, stage.kept_epoch) != stage.kept_epoch:
            raise ValueError(f"{stage.name}: named with two kept epochs ({kept[stage.name]} and {stage.kept_epoch}); "
                             f"a shared stage has one")
    return costed


def hours_on(cores: int, chains: list[list[Stage]], field: str) -> tuple[float, float]:
    """(total CPU-minutes with shared stages once, hours on ``cores`` shared by the chains)."""
    unique = {stage.name: getattr(stage, field) for chain in chains for stage in chain}
    total = sum(unique.values())
    longest = max(sum(getattr(stage, field) for stage in chain) for chain in chains)
    return total, max(total / cores, longest) / 60


def report(chains: list[list[Stage]], cores: int) -> str:
    lines = ["| chain | stage | epochs run | kept epoch (dev CER) | CPU-min as run | CPU-min to the kept epoch |",
             "|---|---|---|---|---|---|"]
    for number, chain in enumerate(chains, 1):
        for stage in chain:
            lines.append(f"| {number} | {stage.name} | {stage.epochs} | {stage.kept_epoch} ({stage.kept_cer:.2f}) "
                         f"| {stage.minutes_run:.1f} | {stage.minutes_to_kept:.1f} |")
        lines.append(f"| {number} | **chain** | | | {sum(s.minutes_run for s in chain):.1f} "
                     f"| {sum(s.minutes_to_kept for s in chain):.1f} |")
    run_total, run_hours = hours_on(cores, chains, "minutes_run")
    kept_total, kept_hours = hours_on(cores, chains, "minutes_to_kept")
    lines += ["", f"Total, shared stages once: {run_total:.0f} CPU-minutes as run, {kept_total:.0f} to the kept epochs.",
              f"On {cores} cores shared by the chains: {run_hours:.2f} hours as run, {kept_hours:.2f} hours to the kept epochs."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--chain", nargs="+", action="append", required=True, metavar="STAGE",
                        help="the probes one model (or ensemble member) was trained through, in order; "
                             "NAME or NAME@EPOCH (the epoch whose weights were kept; default its best)")
    parser.add_argument("--cores", type=int, default=2, help="cores the chains share (default 2)")
    args = parser.parse_args(argv)
    if args.cores < 1:
        parser.error("--cores must be at least 1")
    try:
        chains = chain_costs(args.chain, probe.read_probes())
    except ValueError as error:
        print(f"chain_cost: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(report(chains, args.cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
