"""The diffusion H on a GPU machine that has torch but no structure libraries (pymatgen, PyXtal):
structures are encoded here, tensors travel, samples come back and are scored here.

    python benchmarks/diffusion_gpu.py prepare -o gpu_inputs                      # here (CPU, PyXtal)
    python benchmarks/diffusion_gpu.py train gpu_inputs/perov_5_val.pt -o runs/full --preset full --minutes 6
    python benchmarks/diffusion_gpu.py sample runs/full gpu_inputs/perov_5_test.pt -o runs/full_test.pt --steps 100
    python benchmarks/diffusion_gpu.py evaluate gpu_inputs runs/*_test*.pt         # here: match rate, RMSE, spglib
    python benchmarks/diffusion_gpu.py training runs/full runs/small               # here: the training table

``train`` and ``sample`` import torch and the diffusion package's tensor code only. ``train`` runs the
same loop as ``crystalgf train h`` (Adam, ReduceLROnPlateau, EMA, seeded) with a wall-clock limit, so
it can be held to a training budget. ``sample`` times the whole sampling loop on every test crystal in
one batch (after a one-step warm-up on eight crystals), conditioned on the test properties or not.
``evaluate`` decodes the samples and writes ``results/csp_<data>_gpu.{json,md}`` with the same scores as
``diffusion_csp.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from crystalgf.manifest import now, package_versions, sha256_file
from crystalgf_diffusion.batch import select, to_device
from crystalgf_diffusion.checkpoint import load_checkpoint, sampling_settings
from crystalgf_diffusion.diffusion import prepare, sample
from crystalgf_diffusion.model import DenoiserConfig
from crystalgf_diffusion.train import TrainingSettings, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAINING = {"perov_5_val": SHARED / "perov_5" / "val.csv"}
TESTS = {"perov_5_test": SHARED / "perov_5" / "test.csv", "mp_20_sample_test": SHARED / "mp_20_sample" / "test.csv"}


def prepare_inputs(output: Path) -> None:
    """Collated tensors of the training CSVs (all properties) and of each test set's true constraints."""
    from crystalgf_diffusion.data import collate, encode_constraint
    from crystalgf_diffusion.dataset import load_samples
    from diffusion_csp import true_pairs

    output.mkdir(parents=True, exist_ok=True)
    for name, path in TRAINING.items():
        samples, _ = load_samples(path, output / "cache", "all")
        torch.save({"batch": collate(samples), "source": str(path), "sha256": sha256_file(path)}, output / f"{name}.pt")
    for name, path in TESTS.items():
        entries, pairs = true_pairs(path)
        rows = {id(entry): index for index, entry in enumerate(entries)}
        torch.save({"batch": collate([encode_constraint(c) for _, c in pairs]), "source": str(path),
                    "sha256": sha256_file(path), "rows": [rows[id(e)] for e, _ in pairs], "total_rows": len(entries)},
                   output / f"{name}.pt")
        (output / f"{name}.json").write_text(json.dumps([c.to_dict() for _, c in pairs]))


def train_model(data: Path, output: Path, preset: str, minutes: float, batch_size: int, seed: int) -> None:
    """Train on a collated data set until the epoch in which ``minutes`` have passed."""
    inputs = torch.load(data, weights_only=True)
    config = DenoiserConfig.small() if preset == "small" else DenoiserConfig()
    settings = TrainingSettings(epochs=1_000_000, batch_size=batch_size, seed=seed, time_limit=minutes * 60,
                                device="cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    record = {"data": [inputs["source"]], "data_sha256": inputs["sha256"], "conditioning": "all",
              "train_crystals": len(inputs["batch"]["k"]), "preset": preset}
    train(config, inputs["batch"], None, output, settings, record)
    seconds = time.perf_counter() - started
    epochs = len(json.loads((output / "history.json").read_text()))
    (output / "timing.json").write_text(json.dumps({"seconds": round(seconds, 1), "epochs": epochs,
                                                    "seconds_per_epoch": seconds / epochs}))
    print(f"{output}: {epochs} epochs in {seconds:.0f} s")


def sample_tests(checkpoint: Path, test: Path, output: Path, steps: int | None, conditioned: bool, noise: float | None,
                 seed: int, guidance: float = 1.0) -> None:
    """Sample every crystal of a test set in one batch; write k, f, the time and the settings."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, config = load_checkpoint(checkpoint, device)
    noise, steps = sampling_settings(config, noise, steps)
    inputs = torch.load(test, weights_only=True)
    batch = inputs["batch"]
    if not conditioned:
        batch["has_property"] = torch.zeros_like(batch["has_property"])
    count = len(batch["k"])
    warm = to_device(prepare(select(batch, torch.arange(min(8, count)))), device)
    sample(model, warm, list(range(len(warm["k"]))), 1, guidance, noise)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    k, f = sample(model, to_device(prepare(batch), device), [seed + i for i in range(count)], steps, guidance, noise)
    k, f = k.cpu(), f.cpu()
    seconds = time.perf_counter() - started
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"k": k, "f": f, "test": test.stem, "seconds": seconds, "steps": steps, "noise": noise,
                "guidance": guidance, "conditioned": conditioned, "seed": seed, "checkpoint": checkpoint.name,
                "checkpoint_sha256": sha256_file(checkpoint / "model.pt"), "epochs": config.get("epochs"),
                "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                "torch": str(torch.__version__), "date": now()}, output)
    print(f"{output}: {count} structures, {steps} steps, {seconds:.1f} s ({count / seconds:.0f}/s)")


def evaluate(inputs: Path, samples: list[Path], suffix: str = "", note: str = "") -> None:
    """Decode the samples, score them against the true structures, write the results table
    (``results/csp_<test>_gpu<suffix>``, with ``note`` under its heading)."""
    from crystalgf.datasets import StructureTable
    from crystalgf.schema import Constraint
    from crystalgf.symmetry.detect import detect_space_group
    from crystalgf_diffusion.data import decode, encode_constraint
    from crystalgf_eval.metrics.matching import matcher

    from common import write_results
    from diffusion_csp import score

    by_test: dict[str, list[dict]] = {}
    for path in samples:
        drawn = torch.load(path, weights_only=True)
        by_test.setdefault(drawn["test"], []).append({**drawn, "file": path.name})
    for test, draws in by_test.items():
        meta = torch.load(inputs / f"{test}.pt", weights_only=True)
        entries = StructureTable().read(Path(meta["source"])).entries
        constraints = [Constraint.model_validate(c) for c in json.loads((inputs / f"{test}.json").read_text())]
        pairs = [(entries[row], constraint) for row, constraint in zip(meta["rows"], constraints)]
        true_at_01 = {id(e): detect_space_group(e.structure, 0.1) == c.space_group for e, c in pairs}
        report = {"benchmark": "csp-gpu", "date": now(), "test": {"file": meta["source"], "sha256": meta["sha256"],
                  "rows": meta["total_rows"], "usable": len(pairs)}, "note": note, "versions": package_versions(),
                  "rows": []}
        items = [encode_constraint(c) for c in constraints]
        for drawn in draws:
            structures, offset = [], 0
            for index, item in enumerate(items):
                count = len(item.orbits)
                structures.append(decode(item, drawn["k"][index].numpy(), drawn["f"][offset:offset + count].numpy()))
                offset += count
            report["rows"].append({
                "checkpoint": drawn["checkpoint"], "checkpoint_sha256": drawn["checkpoint_sha256"],
                "epochs": drawn["epochs"], "conditioned": drawn["conditioned"], "guidance": drawn.get("guidance", 1.0), "steps": drawn["steps"],
                "noise": drawn["noise"], "seed": drawn["seed"], "device": drawn["device"], "torch": drawn["torch"],
                "measured": drawn["date"], **score(pairs, structures, matcher(), true_at_01),
                "seconds": round(drawn["seconds"], 2), "structures_per_second": len(pairs) / drawn["seconds"]})
            print(report["rows"][-1])
        write_results(f"csp_{test.removesuffix('_test')}_gpu{suffix}", report, _table(report, sum(true_at_01.values())))


def report_training(runs: list[Path], note: str) -> None:
    """``results/diffusion_gpu_training.{json,md}`` from the folders that ``train`` wrote."""
    from common import write_results

    rows = []
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        history = json.loads((run / "history.json").read_text())
        timing = json.loads((run / "timing.json").read_text())
        rows.append({"run": run.name, "preset": config["preset"], "parameters": _parameters(config["model"]),
                     "train_crystals": config["train_crystals"], "batch_size": config["settings"]["batch_size"],
                     "seed": config["settings"]["seed"], "epochs": timing["epochs"], "seconds": timing["seconds"],
                     "seconds_per_epoch": round(timing["seconds_per_epoch"], 3),
                     "final_train_loss": round(history[-1]["train_loss"], 4), "hardware": config["hardware"],
                     "date": config["date"]})
    write_results("diffusion_gpu_training", {"benchmark": "diffusion-gpu-training", "note": note, "rows": rows}, [
        "# Training the diffusion H on a GPU (Perov-5 val)", "", note, "",
        "| run | preset | parameters | crystals | batch | epochs | seconds | s/epoch | final loss | hardware | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['run']} | {r['preset']} | {r['parameters'] / 1e6:.1f} M | {r['train_crystals']} | {r['batch_size']} | "
          f"{r['epochs']} | {r['seconds']} | {r['seconds_per_epoch']} | {r['final_train_loss']} | {r['hardware']} | "
          f"{r['date'][:16]} |" for r in rows]])


def _parameters(model: dict) -> int:
    from crystalgf_diffusion.model import Denoiser

    return sum(p.numel() for p in Denoiser(DenoiserConfig.from_dict(model)).parameters())


def _table(report: dict, true_at_01: int) -> list[str]:
    rows = report["rows"]
    lines = [f"# Structure prediction with true constraints on a GPU: {Path(report['test']['file']).parent.name}"
             f"/{Path(report['test']['file']).name}", "",
             f"Sampled on {rows[0]['device']} (torch {rows[0]['torch']}), {rows[0]['measured']}; scored "
             f"{report['date']} on the CPU; {report['test']['usable']} of {report['test']['rows']} test rows, every "
             f"structure in one batch, seed {rows[0]['seed']}. The true structures show their group at 0.1 Å in "
             f"{true_at_01} cases. Time: the whole sampling loop after a one-step warm-up.",
             *(["", report["note"]] if report.get("note") else []), "",
             "| checkpoint | epochs | properties | guidance | steps | noise | match rate | RMSE | exact composition | "
             "space group @0.1 | @0.01 | seconds | structures/s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['checkpoint']} | {r['epochs']} | {'conditioned' if r['conditioned'] else 'none'} | "
              f"{r.get('guidance', 1.0) if r['conditioned'] else '-'} | {r['steps']} | "
              f"{r['noise']} | {r['match_rate']:.2%} | {r['rmse'] if r['rmse'] is None else round(r['rmse'], 4)} | "
              f"{r['exact_composition']:.1%} | {r['space_group@0.1']:.1%} | {r['space_group@0.01']:.1%} | "
              f"{r['seconds']} | {r['structures_per_second']:.0f} |" for r in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    step = commands.add_parser("prepare")
    step.add_argument("-o", "--output", type=Path, required=True)
    step = commands.add_parser("train")
    step.add_argument("data", type=Path)
    step.add_argument("-o", "--output", type=Path, required=True)
    step.add_argument("--preset", choices=["small", "full"], default="full")
    step.add_argument("--minutes", type=float, required=True)
    step.add_argument("--batch-size", type=int, default=256)
    step.add_argument("--seed", type=int, default=0)
    step = commands.add_parser("sample")
    step.add_argument("checkpoint", type=Path)
    step.add_argument("test", type=Path)
    step.add_argument("-o", "--output", type=Path, required=True)
    step.add_argument("--steps", type=int, default=None, help="default: the checkpoint's own, else 100")
    step.add_argument("--unconditioned", action="store_true")
    step.add_argument("--noise", type=float, default=None, help="default: the checkpoint's own, else 0")
    step.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance (conditioned only)")
    step.add_argument("--seed", type=int, default=0)
    step = commands.add_parser("training")
    step.add_argument("runs", type=Path, nargs="+")
    step.add_argument("--note", default="")
    step = commands.add_parser("evaluate")
    step.add_argument("inputs", type=Path)
    step.add_argument("samples", type=Path, nargs="+")
    step.add_argument("--suffix", default="", help="appended to the results file's name, e.g. _budget")
    step.add_argument("--note", default="", help="a remark under the table's heading (how the checkpoints were trained)")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare_inputs(args.output)
    elif args.command == "train":
        train_model(args.data, args.output, args.preset, args.minutes, args.batch_size, args.seed)
    elif args.command == "sample":
        sample_tests(args.checkpoint, args.test, args.output, args.steps, not args.unconditioned, args.noise, args.seed,
                     args.guidance)
    elif args.command == "training":
        report_training(args.runs, args.note)
    else:
        evaluate(args.inputs, args.samples, args.suffix, args.note)


if __name__ == "__main__":
    main()
