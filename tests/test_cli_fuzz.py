"""A standing fuzz table of the command line (issue #23): bad inputs over every command, each of which
must end with exit code 2, exactly one line on stderr (``error: ...``, no traceback) and nothing written
(not in the output path, not in the current directory, not in the inputs).

The cases fail at validation or use cheap plugins (``--g prior --h pyxtal``), so the table runs in well
under a minute. ``{in}`` is a folder of inputs made once, ``{out}`` an output path that does not exist.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from crystalgf.cli import main
from crystalgf_diffusion.checkpoint import PACKAGED_CHECKPOINT

CONSTRAINT = '{"id": "%s", "formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]}\n'
GP = ["--g", "prior", "--h", "pyxtal"]
RUN = ["run", *GP, "--formula", "NaCl"]


class _Payload:
    def __reduce__(self):
        return open, ("crafted-pickle-ran", "w")  # relative: the case's empty current directory


def _write_inputs(root: Path) -> None:
    text = {
        "requests.csv": "id,formula,band_gap\na,NaCl,1.0\n",
        "bandgap.csv": "id,formula,bandgap\na,NaCl,1.0\n",
        "twice.csv": "id,formula,formula\na,NaCl,KBr\n",
        "no-formula.csv": "id,band_gap\na,1.0\n",
        "empty.csv": "",
        "header-only.csv": "id,formula\n",
        "bad-formula.csv": "id,formula\na,Na(Cl\n",
        "space-formula.csv": "id,formula\na,C o\n",
        "bad-gap.csv": "id,formula,band_gap\na,NaCl,1e9\n",
        "bad-gap-text.csv": "id,formula,band_gap\na,NaCl,wide\n",
        "bad-group.csv": "id,formula,space_group\na,NaCl,231\n",
        "bad-group-text.csv": "id,formula,space_group\na,NaCl,cubic\n",
        "bad-max-atoms.csv": "id,formula,max_atoms\na,NaCl,0\n",
        "bad-exact.csv": "id,formula,exact_cell\na,NaCl,maybe\n",
        "extra-fields.csv": "id,formula\na,NaCl,KBr\n",
        "unnamed-value.csv": "id,formula,\na,NaCl,5\n",
        "both.csv": "id,formula,elements\na,NaCl,Na-Cl\n",
        "neither.csv": "id,formula,elements\na,,\n",
        "duplicate-ids.csv": "id,formula\na,NaCl\na,KBr\n",
        "bad-elements.csv": "id,elements\na,Ni-Qq\n",
        "constraints.jsonl": CONSTRAINT % "a" + CONSTRAINT % "b",
        "bad-json.jsonl": '{"formula": "Na4Cl4", "space_group": 225\n',
        "json-list.jsonl": "[1, 2]\n",
        "bad-letter.jsonl": CONSTRAINT.replace('"4b"', '"4z"') % "a",
        "bad-sum.jsonl": CONSTRAINT.replace('"4b"', '"8c"') % "a",
        "group-0.jsonl": CONSTRAINT.replace("225", "0") % "a",
        "group-text.jsonl": CONSTRAINT.replace("225", '"225"') % "a",
        "id-dict.jsonl": CONSTRAINT.replace('"%s"', '{"a": 1}'),
        "twice.jsonl": CONSTRAINT % "a" + CONSTRAINT % "a",
        "blank.jsonl": "\n\n",
        "config.yaml": "g: prior\nh: pyxtal\nformula: NaCl\n",
        "config-unknown.yaml": "formula: NaCl\ncolour: red\n",
        "config-list.yaml": "- formula\n- NaCl\n",
        "config-broken.yaml": "formula: [NaCl\n",
        "config-n.yaml": "formula: NaCl\nn: 0\n",
        "config-n-huge.yaml": "g: prior\nformula: NaCl\nn: 100000000\n",
        "config-output.yaml": "g: prior\nh: pyxtal\nformula: NaCl\noutput: ''\n",
        "config-gap.yaml": "g: prior\nformula: NaCl\nband_gap: 1e9\n",
        "config-options.yaml": "g: prior\nformula: NaCl\ng_options: [1, 2]\n",
        "structures.csv": "material_id,cif\n",
        "no-cif.csv": "material_id,formula\nm,NaCl\n",
        "blocker": "a file where a directory is expected\n",
    }
    for name, content in text.items():
        (root / name).write_text(content)
    (root / "latin1.csv").write_bytes(b"id,formula\na,NaCl\n\xff\xfe,KBr\n")
    (root / "latin1.jsonl").write_bytes(b"\xff\xfe" + CONSTRAINT.encode())
    (root / "latin1.yaml").write_bytes(b"formula: \xff\n")
    (root / "bom-bandgap.csv").write_bytes("id,formula,bandgap\na,NaCl,1\n".encode("utf-8-sig"))
    (root / "a-directory").mkdir()
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "notes.txt").write_text("mine\n")
    for name, damage in {
        "checkpoint-config": lambda f: (f / "config.json").write_text("{broken"),
        "checkpoint-empty": lambda f: (f / "model.pt").write_bytes(b""),
        "checkpoint-cut": lambda f: (f / "model.pt").write_bytes((f / "model.pt").read_bytes()[:4096]),
        "checkpoint-shape": lambda f: torch.save({"inputs.weight": torch.zeros(2, 2)}, f / "model.pt"),
        "checkpoint-pickle": lambda f: torch.save({"x": _Payload()}, f / "model.pt"),
    }.items():
        shutil.copytree(PACKAGED_CHECKPOINT, root / name, ignore=shutil.ignore_patterns("history.json"))
        damage(root / name)
    for name, state in {"state-pickle": {"epoch": 1, "model": _Payload()}, "state-text": None}.items():
        (root / name).mkdir()
        if state is None:
            (root / name / "train_state.pt").write_text("not a state")
        else:
            torch.save(state, root / name / "train_state.pt")
    result = CliRunner().invoke(main, [*RUN, "-n", "2", "-o", str(root / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-inputs")
    _write_inputs(root)
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


CASES: list[tuple[str, list[str]]] = []


def case(name: str, *args: str) -> None:
    CASES.append((name, list(args)))


# --- crystalgf run ---------------------------------------------------------------------------------------
for formula in ["Sr(Ti", "XxO2", "C o", "", " ", "2NaCl", "Na0Cl", "na cl", "NaCl)", "Na((Cl))2)", "Na-Cl",
                "NaCl3.5", "Na½Cl", "D2O", "T2O", "Na Cl 2", "((((((Na))))))Cl", "Na9999999999Cl"]:
    case(f"run formula {formula!r}", "run", *GP, "--formula", formula, "-o", "{out}")
for elements in ["", "Ni-Qq", "Ni-Ni", "--", "ni-sc", "Ni--Xx", "1-2"]:
    case(f"run elements {elements!r}", "run", *GP, "--elements", elements, "-o", "{out}")
case("run formula and elements", "run", *GP, "--formula", "NaCl", "--elements", "Na-Cl", "-o", "{out}")
case("run no composition", "run", *GP, "-o", "{out}")
case("run exact cell of elements", "run", *GP, "--elements", "Na-Cl", "--exact-cell", "-o", "{out}")
case("run formula above max atoms", "run", *GP, "--formula", "Sr10Ti10O30", "--max-atoms", "20", "-o", "{out}")
for gap in ["-0.5", "1e9", "31", "nan", "inf", "-inf", "abc", "1:0.5", "1:", ":2", "0:31", "1.5:2.0:3", ""]:
    case(f"run band gap {gap!r}", *RUN, "--band-gap", gap, "-o", "{out}")
for energy in ["-25", "11", "x", "nan", "2:1", "-21:0"]:
    case(f"run formation energy {energy!r}", *RUN, "--formation-energy", energy, "-o", "{out}")
for group in ["0", "231", "-5", "abc", "1.5"]:
    case(f"run space group {group!r}", *RUN, "--space-group", group, "-o", "{out}")
for atoms in ["0", "-1", "201", "100000", "abc"]:
    case(f"run max atoms {atoms!r}", *RUN, "--max-atoms", atoms, "-o", "{out}")
for n in ["0", "-1", "1000000000", "100001", "abc", "1.5"]:
    case(f"run -n {n!r}", *RUN, "-n", n, "-o", "{out}")
for option, values in {"--top-k": ["0", "-1", "x"], "--seed": ["-1", "x", "1.5"], "--batch-size": ["0", "-3", "x"],
                       "--format": ["pdb", ""]}.items():
    for value in values:
        case(f"run {option} {value!r}", *RUN, option, value, "-o", "{out}")
for flag, value in [("--g", "nope"), ("--g", ""), ("--h", "nope"), ("--h", ""), ("--relax", "nope")]:
    case(f"run {flag} {value!r}", "run", "--g", "prior", "--h", "pyxtal", "--formula", "NaCl", flag, value,
         "-o", "{out}")
for option in ["colour=red", "table=/nowhere/prior.json", "noequals", "=x", "a=[1"]:
    case(f"run --g-option {option!r}", *RUN, "--g-option", option, "-o", "{out}")
for option in ["volume_factor=abc", "volume_factor=-1", "attempts=0", "colour=1"]:
    case(f"run pyxtal --h-option {option!r}", *RUN, "--h-option", option, "-o", "{out}")
for option in ["checkpoint=/nowhere", "steps=0", "steps=1.5", "noise=-1", "guidance=-1", "retries=-1",
               "device=tpu", "batch_size=0", "checkpoint={in}/checkpoint-config", "checkpoint={in}/checkpoint-empty",
               "checkpoint={in}/checkpoint-cut", "checkpoint={in}/checkpoint-shape",
               "checkpoint={in}/checkpoint-pickle"]:
    case(f"run diffusion --h-option {option!r}", "run", "--g", "prior", "--h", "diffusion", "--formula", "NaCl",
         "--h-option", option, "-o", "{out}")
for output in ["", " "]:
    case(f"run -o {output!r}", *RUN, "-o", output)
case("run -o a file", *RUN, "-o", "{in}/blocker")
case("run -o below a file", *RUN, "-o", "{in}/blocker/out")
case("run -o a non-empty folder", *RUN, "-o", "{in}/not-a-run")
case("run --overwrite a folder that is not a run", *RUN, "-o", "{in}/not-a-run", "--overwrite")
case("run --resume a folder that is not a run", *RUN, "-o", "{in}/not-a-run", "--resume")
case("run -o a finished run", *RUN, "-o", "{in}/run")
case("run --resume with other settings", *RUN, "-n", "3", "-o", "{in}/run", "--resume")
case("run --resume and --overwrite", *RUN, "-o", "{out}", "--resume", "--overwrite")
for config in ["/nowhere.yaml", "", "{in}/config-unknown.yaml", "{in}/config-list.yaml", "{in}/config-broken.yaml",
               "{in}/config-n.yaml", "{in}/config-n-huge.yaml", "{in}/config-gap.yaml", "{in}/config-options.yaml",
               "{in}/latin1.yaml", "{in}/a-directory"]:
    case(f"run --config {config!r}", "run", "--config", config, "-o", "{out}")
case("run config with an empty output", "run", "--config", "{in}/config-output.yaml")
case("run without an output", *RUN)
case("run unknown option", *RUN, "--colour", "red", "-o", "{out}")
case("run extra argument", *RUN, "extra", "-o", "{out}")
case("run option without value", *RUN, "-o")

# --- crystalgf constrain ---------------------------------------------------------------------------------
for name in ["/nowhere.csv", "", "{in}/a-directory", "{in}/latin1.csv", "{in}/bandgap.csv", "{in}/bom-bandgap.csv",
             "{in}/twice.csv", "{in}/no-formula.csv", "{in}/empty.csv", "{in}/header-only.csv", "{in}/bad-formula.csv",
             "{in}/space-formula.csv", "{in}/bad-gap.csv", "{in}/bad-gap-text.csv", "{in}/bad-group.csv",
             "{in}/bad-group-text.csv", "{in}/bad-max-atoms.csv", "{in}/bad-exact.csv", "{in}/extra-fields.csv",
             "{in}/unnamed-value.csv", "{in}/both.csv", "{in}/neither.csv", "{in}/duplicate-ids.csv",
             "{in}/bad-elements.csv"]:
    case(f"constrain --input {name!r}", "constrain", "--g", "prior", "--input", name, "-o", "{out}.jsonl")
case("constrain all rows invalid, skipped", "constrain", "--g", "prior", "--input", "{in}/bad-formula.csv",
     "--skip-invalid", "-o", "{out}.jsonl")
for args in [["--top-k", "0"], ["--top-k", "x"], ["--seed", "-1"], ["--g", "nope"], ["--g-option", "colour=red"],
             ["--g-option", "noequals"]]:
    case(f"constrain {' '.join(args)}", "constrain", "--g", "prior", "--input", "{in}/requests.csv", *args,
         "-o", "{out}.jsonl")
for output in ["", "{in}/requests.csv", "{in}/nowhere/c.jsonl", "{in}/blocker/c.jsonl"]:
    case(f"constrain -o {output!r}", "constrain", "--g", "prior", "--input", "{in}/requests.csv", "-o", output)
case("constrain without --input", "constrain", "--g", "prior", "-o", "{out}.jsonl")

# --- crystalgf generate ----------------------------------------------------------------------------------
for name in ["/nowhere.jsonl", "", "{in}/a-directory", "{in}/latin1.jsonl", "{in}/bad-json.jsonl",
             "{in}/json-list.jsonl", "{in}/bad-letter.jsonl", "{in}/bad-sum.jsonl", "{in}/group-0.jsonl",
             "{in}/group-text.jsonl", "{in}/id-dict.jsonl", "{in}/twice.jsonl", "{in}/blank.jsonl", "{in}/empty.csv"]:
    case(f"generate --input {name!r}", "generate", "--h", "pyxtal", "--input", name, "-o", "{out}")
case("generate all lines invalid, skipped", "generate", "--h", "pyxtal", "--input", "{in}/bad-json.jsonl",
     "--skip-invalid", "-o", "{out}")
for args in [["-n", "0"], ["-n", "1000000000"], ["-n", "60000"], ["--h", "nope"], ["--h-option", "attempts=0"],
             ["--relax", "nope"], ["--format", "pdb"], ["--batch-size", "0"], ["--seed", "-1"],
             ["--resume", "--overwrite"], ["--h", "diffusion", "--h-option", "checkpoint={in}/checkpoint-pickle"],
             ["--h", "diffusion", "--h-option", "checkpoint={in}/checkpoint-cut"]]:
    case(f"generate {' '.join(args)}", "generate", "--h", "pyxtal", "--input", "{in}/constraints.jsonl", *args,
         "-o", "{out}")
for output in ["", "{in}/blocker", "{in}/not-a-run", "{in}/run"]:
    case(f"generate -o {output!r}", "generate", "--h", "pyxtal", "--input", "{in}/constraints.jsonl", "-o", output)

# --- crystalgf evaluate ----------------------------------------------------------------------------------
EVALUATE = ["evaluate", "--input", "{in}/run"]
for args in [["--input", "/nowhere"], ["--input", ""], ["--reference", "/nowhere.csv"], ["--reference", ""],
             ["--vasp", "/nowhere"], ["--metrics", "nope"], ["--predictor", "colour=megnet-bandgap"],
             ["--predictor", "band_gap=nope"], ["--option", "nodot=1"], ["--option", "nope.x=1"],
             ["--relaxer", "nope"], ["--reference-limit", "0"], ["--elemental-references", "/nowhere.json.gz"],
             ["--relaxer-option", "colour=1"]]:
    case(f"evaluate {' '.join(args)}", *EVALUATE, *args, "-o", "{out}")
case("evaluate constraints without reference", "evaluate", "--input", "{in}/constraints.jsonl", "-o", "{out}")
case("evaluate -o ''", *EVALUATE, "-o", "")
case("evaluate -o a non-empty folder", *EVALUATE, "-o", "{in}/not-a-run")

# --- crystalgf export-vasp -------------------------------------------------------------------------------
for args in [["--input", "/nowhere"], ["--input", ""], ["--input", "{in}/requests.csv"], ["--ids", ""],
             ["--ids", "a,,b"], ["--ids", " "], ["--ids", "nope"], ["-o", ""], ["-o", "{in}/not-a-run"],
             ["-o", "{in}/blocker"]]:
    flags = ["--input", "{in}/run", "-o", "{out}"]
    for i in range(0, len(args), 2):
        if args[i] in flags:
            flags[flags.index(args[i]) + 1] = args[i + 1]
        else:
            flags += args[i:i + 2]
    case(f"export-vasp {' '.join(args)}", "export-vasp", *flags)

# --- crystalgf train g / train h / g-data ------------------------------------------------------------------
TRAIN_G = ["train", "g", "--data", "{in}/structures.csv"]
for args in [["--data", "/nowhere.csv"], ["--data", ""], ["--epochs", "0"], ["--batch-size", "0"],
             ["--learning-rate", "0"], ["--rank", "0"], ["--device", "tpu"], ["--dtype", "x"], ["--g", "nope"],
             ["--language", "xx"], ["--neighbours", "-1"], ["--limit", "0"], ["--stop-after", "0"], ["--resume"],
             ["--dataset", "nope"]]:
    case(f"train g {' '.join(args)}", *TRAIN_G, *args, "-o", "{out}")
case("train g -o ''", *TRAIN_G, "-o", "")
case("train g -o a non-empty folder", *TRAIN_G, "-o", "{in}/not-a-run")
case("train g --resume a crafted state", *TRAIN_G, "--resume", "-o", "{in}/state-pickle")
TRAIN_H = ["train", "h", "--data", "{in}/structures.csv"]
for args in [["--data", "/nowhere.csv"], ["--data", ""], ["--data", "{in}/no-cif.csv"], ["--data", "{in}/latin1.csv"],
             ["--validation", "/nowhere.csv"], ["--patience", "3"], ["--property", "colour"], ["--preset", "huge"],
             ["--epochs", "0"], ["--batch-size", "0"], ["--limit", "0"], ["--max-minutes", "0"], ["--device", "tpu"],
             ["--resume"]]:
    case(f"train h {' '.join(args)}", *TRAIN_H, *args, "-o", "{out}")
case("train h -o ''", *TRAIN_H, "-o", "")
case("train h -o a non-empty folder", *TRAIN_H, "-o", "{in}/not-a-run")
case("train h --resume a crafted state", *TRAIN_H, "--resume", "-o", "{in}/state-pickle")
case("train h --resume a broken state", *TRAIN_H, "--resume", "-o", "{in}/state-text")
G_DATA = ["g-data", "--data", "{in}/structures.csv"]
for args in [["--data", "/nowhere.csv"], ["--data", ""], ["--split", "x"], ["--mode", "x"], ["--task", "x"],
             ["--language", "xx"], ["--neighbours", "-1"], ["--dataset", "nope"]]:
    case(f"g-data {' '.join(args)}", *G_DATA, *args, "-o", "{out}.json")
for output in ["", "{in}/requests.csv"]:
    case(f"g-data -o {output!r}", *G_DATA, "-o", output)

# --- crystalgf plugins, and the command group ----------------------------------------------------------------
case("plugins unknown option", "plugins", "--colour")
case("plugins extra argument", "plugins", "extra")
case("unknown command", "nope")
case("unknown train command", "train", "nope")
case("unknown top-level option", "--colour")


@pytest.mark.parametrize("name, args", CASES, ids=[name for name, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(inputs, tmp_path, monkeypatch, name, args):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    argv = [a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in args]
    before = _snapshot(inputs)
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir()), "an output was written"
    assert not any(cwd.iterdir()), "something was written into the current directory"
    assert _snapshot(inputs) == before, "an input changed"


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 150
    commands = {args[0] if args[0] != "train" else " ".join(args[:2]) for _, args in CASES}
    assert {"run", "constrain", "generate", "evaluate", "export-vasp", "train g", "train h", "g-data",
            "plugins"} <= commands
    assert len({name for name, _ in CASES}) == len(CASES)


def test_the_inputs_are_good_where_they_should_be(inputs, tmp_path):
    """The shared inputs that bad cases lean on are themselves valid, so each case tests one thing."""
    runner = CliRunner()
    assert runner.invoke(main, ["constrain", "--g", "prior", "--input", str(inputs / "requests.csv"),
                                "-o", str(tmp_path / "c.jsonl")]).exit_code == 0
    assert runner.invoke(main, ["run", "--config", str(inputs / "config.yaml"), "-o", str(tmp_path / "r")]).exit_code == 0
    assert json.loads((inputs / "run" / "manifest.json").read_text())["status"] == "complete"
