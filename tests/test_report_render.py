"""The report renderer on synthetic inputs (tables, figures, metrics, benchmarks) in the workflow's layout.

The numbers are made up: these tests check that the report shows them faithfully and labels them,
not that they are good.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

from febm.cli import main as febm_main
from febm.config import load_config
from febm.evaluation.tables import build_table, read_paper_values
from febm.reporting.render import ReportInputs, render_report
from febm.results_schema import make_row, write_results
from febm.runspec import TOY_DATASET, RunSpec
from febm.toy.table import build_table5
from tests.grid_files import run_record, training_grid

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "febm" / "data" / "reported_results.csv"
TEMPLATES = REPO / "report"


def tiny_png(path: Path, rgb: tuple[int, int, int] = (40, 90, 160), size: int = 8) -> Path:
    """A valid solid-colour PNG without needing an image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * size))
    data += chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def toy_figure_png(path: Path, number: int) -> Path:
    """A small figure saved the way `febm toy-figure` saves Figure ``number`` (PNG + PDF, identity in the PNG)."""
    from febm.toy.figure_style import _save, _style

    plt = _style()
    figure, axis = plt.subplots(figsize=(1.0, 0.8), dpi=40)
    axis.plot([0, 1], [0, number])
    _save(figure, path.with_suffix(""), 40, f"figure{number}")
    plt.close(figure)
    return path


def smoke_config(**sections) -> dict:
    config = load_config([REPO / "config" / "config.yaml", REPO / "config" / "smoke.yaml"])
    for name, values in sections.items():
        config[name] = {**config[name], **values} if isinstance(values, dict) else values
    return config


def write_tables(root: Path, tables: Path, preset: str, standin: bool) -> None:
    """Table 5 and Table 1 as their producers write them (`febm toy-table`, `febm image-table`), from run
    and score records made up around chosen means and spreads."""
    scale = "paper" if preset == "paper" else "reduced: 300 steps"
    made = root / "producer_inputs"
    optimum = made / "optimum" / "kl.json"
    optimum.parent.mkdir(parents=True, exist_ok=True)
    optimum.write_text(
        json.dumps({"divergence": "kl", "mu": 1.0107, "sigma": 1.8302, "divergence_value": 0.1})
    )
    runs = []
    for method, mu, mu_std, sigma, sigma_std in [
        ("febm", 1.0234, 0.0123, 1.8111, 0.0045),
        ("mle", 1.0099, 0.0001, 1.83, 0.001),
    ]:
        for seed, sign in ((0, 1), (1, -1)):  # two seeds at mean +- std / sqrt(2): their std is `std`
            run = made / "runs" / method / f"seed{seed}"
            run.mkdir(parents=True, exist_ok=True)
            record = {"method": method, "divergence": "kl", "seed": seed, "status": "completed", "iterations": 300,
                      "mu": mu + sign * mu_std / 2**0.5, "sigma": sigma + sign * sigma_std / 2**0.5,
                      "preset": preset, "scale": scale}  # fmt: skip
            (run / "metrics.json").write_text(json.dumps(record))
            runs.append(run)
    write_results(build_table5([optimum], runs, PAPER), tables / "table5.csv")

    def score(method: str, divergence: str, seed: int, fid: float, inception: float) -> dict:
        return {"dataset": "cifar10", "method": method, "divergence": divergence, "seed": seed, "fid": fid,
                "inception_score": inception, "inception_score_std": 0.01, "n_samples": 5000,
                "reference": {"reference_set": "train+test", "n": 60000}, "preprocessing": "tf", "protocol": "paper",
                "preset": preset, "scale": scale, "standin_weights": standin, "standin_data": standin}  # fmt: skip

    half = 1.5 / 2**0.5  # two seeds 345.6789 +- half: FID 345.68 +- 1.50
    scores = [score("febm", "jensen_shannon", 0, 345.6789 + half, 1.2345), score("febm", "jensen_shannon", 1, 345.6789 - half, 1.2345),
              score("cd", "kl", 0, 400.25, 1.1111)]  # fmt: skip
    write_results(build_table(1, scores, read_paper_values(PAPER, 1), preset), tables / "table1.csv")


def write_inputs(root: Path, preset: str = "smoke", standin: bool = True) -> dict[str, list[Path]]:
    """Table 5 and Table 1 exist; Table 2 (CelebA) was not run."""
    tables = root / "results" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    write_tables(root, tables, preset, standin)
    figures = [toy_figure_png(root / "results" / "figures" / f"figure{n}.png", n) for n in (1, 2, 3, 4)]
    metrics = []
    for seed in (0, 1):
        path = root / "results" / "toy" / "runs" / "febm" / "kl" / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**RunSpec("toy", TOY_DATASET, "febm", "kl", seed).record(), "preset": preset}
        record.update(scale="reduced: 300 steps", standin_data=False)
        record["provenance"] = {"device": "cpu (2 cores)", "host": "testhost"}
        path.write_text(json.dumps(record))
        metrics.append(path)
    run = run_record("cifar10", "febm", "jensen_shannon", 0)
    score = root / "results" / "images" / "scores" / "cifar10" / "febm" / "jensen_shannon" / "seed0.json"
    score.parent.mkdir(parents=True, exist_ok=True)
    score.write_text(json.dumps({**run, "preset": preset, "standin_data": standin, "fid": 345.6789}))
    metrics.append(score)
    run_dir = root / "results" / "images" / "runs" / "cifar10" / "febm" / "jensen_shannon" / "seed0"
    samples = [training_grid(run_dir / "samples.png", run)]
    benchmarks = []
    for stage, seconds in [("toy_train", [1.5, 2.5]), ("train_images", [75.0])]:
        for index, value in enumerate(seconds):
            path = root / "results" / "benchmarks" / stage / f"job{index}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                f"{value}\t0:00:01\t123.4\t0\t0\t0\t0\t0\t0\t0\n"
            )
            benchmarks.append(path)
    stability = root / "results" / "toy" / "stability" / "kl.json"
    stability.parent.mkdir(parents=True, exist_ok=True)
    stability.write_text(
        json.dumps(
            {
                "divergence": "kl",
                "learned_mu": 1.0234,
                "max_real_eigenvalue": {"real": -0.25, "imag": 0.0},
                "statement": "locally exponentially stable",
                "eigenvalues_top10": [[-0.25, 0.0]],
            }
        )
    )
    return {
        "tables": sorted(tables.glob("*.csv")),
        "figures": figures,
        "metrics": metrics,
        "samples": samples,
        "benchmarks": benchmarks,
        "stability": [stability],
    }


def render(tmp_path: Path, config: dict, **overrides) -> str:
    files = {
        **write_inputs(tmp_path, preset=config["preset"], standin=config["images"]["standin_data"]),
        **overrides,
    }
    out = tmp_path / "results" / "report" / "index.html"
    render_report(ReportInputs(config=config, templates=TEMPLATES, paper=PAPER, out=out, **files))
    return out.read_text()


def section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def test_table_shows_ours_beside_the_paper_with_the_difference(tmp_path):
    table5 = section(render(tmp_path, smoke_config()), "table5")
    row = re.search(r"<tr class=\"ours\">\s*<td>f-EBM</td><td>KL</td>(.*?)</tr>", table5, re.S).group(1)
    cells = re.findall(r"<td class=\"num[^\"]*\">(.*?)</td>", row, re.S)
    text = [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]
    # mu: ours 1.0234 +- 0.0123 over n = 2, paper 1.0154, difference +0.0080; then sigma.
    assert text[0].startswith("1.0234 ± 0.0123 (n = 2)")
    assert text[1] == "1.0154" and text[2].startswith("+0.0080")
    assert (
        text[3].startswith("1.8111 ± 0.0045 (n = 2)")
        and text[4] == "1.8302"
        and text[5].startswith("−0.0191")
    )


def test_image_table_and_paper_only_rows(tmp_path):
    table1 = section(render(tmp_path, smoke_config()), "table1")
    assert "345.68 ± 1.50" in table1 and "30.86" in table1 and "+314.82" in table1  # JS FID vs the paper
    assert "DCGAN" in table1 and "6.58" in table1  # cited GAN rows stay visible


def test_every_number_below_paper_scale_is_labelled(tmp_path):
    html = render(tmp_path, smoke_config())
    for anchor in ("table5", "table1"):
        rows = re.findall(r'<tr class="ours">(.*?)</tr>', section(html, anchor), re.S)
        assert rows
        for row in rows:
            numbers = [
                cell
                for cell in re.findall(r'<td class="num (?:ours|diff)">(.*?)</td>', row, re.S)
                if cell.strip() != "–"
            ]
            assert numbers and all('class="label"' in cell for cell in numbers), row
    assert ">stand-in<" in section(html, "table1") and "stand-in Inception weights" not in section(
        html, "table5"
    )
    assert 'class="label"' in section(html, "figures")


def test_paper_scale_numbers_carry_no_label(tmp_path):
    # Negative control for the test above: the labels come from the inputs, not from the template.
    config = load_config([REPO / "config" / "config.yaml"])
    files = write_inputs(tmp_path, preset="paper", standin=False)
    for path in files["metrics"]:
        record = json.loads(path.read_text())
        record.update(scale="paper", standin_data=False)
        path.write_text(json.dumps(record))
    out = tmp_path / "index.html"
    render_report(ReportInputs(config=config, templates=TEMPLATES, paper=PAPER, out=out, **files))
    html = out.read_text()
    assert 'class="label"' not in section(html, "table5") and 'class="label"' not in section(html, "table1")


def test_missing_studies_render_as_not_run(tmp_path):
    config = smoke_config(toy={"enabled": False}, images={"datasets": ["cifar10"]})
    html = render(tmp_path, config, tables=[tmp_path / "results" / "tables" / "table1.csv"], figures=[])
    assert "not run" in section(html, "table5") and "toy.enabled: false" in section(html, "table5")
    assert "celeba32 is not in images.datasets" in section(html, "table2")
    assert "35.97" in section(html, "table2")  # the paper's numbers are still shown
    assert section(html, "figures").count("not run") == 4
    html = render(tmp_path, smoke_config(images={"enabled": False}), tables=[], samples=[])
    assert "images.enabled: false" in section(html, "table1") and "not run" in section(html, "samples")


def test_values_are_escaped(tmp_path):
    table = tmp_path / "evil" / "table5.csv"
    table.parent.mkdir()
    evil = "<script>alert(1)</script>"
    write_results(
        [make_row("table5", "toy_mixture", "f-EBM", evil, "mu", mean=1.0, std=0.1, n=2, n_runs=2)], table
    )
    html = render(tmp_path, smoke_config(), tables=[table])
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_wall_time_per_stage_and_provenance(tmp_path):
    html = render(tmp_path, smoke_config())
    run = section(html, "run")
    assert re.search(
        r"toy_train</td><td class=\"num\">2</td><td class=\"num\">4.0 s</td><td class=\"num\">2.5 s", run
    )
    assert "1 min 15 s" in run and "cpu (2 cores) on testhost" in run
    provenance = section(html, "provenance")
    assert re.search(r"[0-9a-f]{40}|unknown \(not a git checkout\)", provenance)
    assert "Config hash" in provenance and "torch" in provenance and "snakemake" in provenance


def test_report_is_self_contained_or_copies_figures_beside_it(tmp_path):
    html = render(tmp_path, smoke_config())
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    copied = tmp_path / "copied"
    html = render(copied, smoke_config(report={"embed_figures": False}))
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources and all((copied / "results" / "report" / source).is_file() for source in sources)


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\n")
    status = febm_main(
        [
            "report",
            "--config",
            str(config),
            "--tables",
            str(tmp_path / "nope" / "table5.csv"),
            "--out",
            str(tmp_path / "r.html"),
        ]
    )
    assert status == 2
    assert "table file" in capsys.readouterr().err


def test_command_line_renders_from_globbed_files(tmp_path, capsys):
    files = write_inputs(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\nimages: {standin_data: true}\n")
    out = tmp_path / "results" / "report" / "index.html"
    arguments = ["report", "--config", str(config), "--templates", str(TEMPLATES), "--out", str(out)]
    for name, paths in files.items():
        arguments += [f"--{name}", *map(str, paths)]
    assert febm_main(arguments) == 0
    assert str(out) in capsys.readouterr().out and "Table 5" in out.read_text()


def test_stability_shows_the_conclusion_and_key_numbers(tmp_path):
    stability = section(render(tmp_path, smoke_config()), "stability")
    assert "locally exponentially stable" in stability
    assert "learned μ = 1.0234" in stability and "eigenvalues = −0.2500" in stability


def test_a_table_in_another_layout_is_an_error_not_a_guess(tmp_path, capsys):
    files = write_inputs(tmp_path)
    table = tmp_path / "old" / "table1.csv"
    table.parent.mkdir()
    table.write_text("method,divergence,fid_mean,fid_std,n\nfebm,kl,30.0,1.0,2\n")  # a layout febm once wrote
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\n")
    arguments = [
        "report",
        "--config",
        str(config),
        "--templates",
        str(TEMPLATES),
        "--out",
        str(tmp_path / "r.html"),
    ]
    assert febm_main([*arguments, "--tables", str(table), "--figures", *map(str, files["figures"])]) == 2
    error = capsys.readouterr().err.strip()
    assert "not in febm's results schema" in error and "table1.csv" in error and "\n" not in error
    assert not (tmp_path / "r.html").exists()


def test_figures_are_placed_by_what_their_png_states_not_their_name(tmp_path, capsys):
    files = write_inputs(tmp_path)
    renamed = toy_figure_png(tmp_path / "elsewhere" / "plot_a.png", 3)
    files["figures"] = [path for path in files["figures"] if path.stem != "figure3"] + [renamed]
    config = smoke_config()
    out = tmp_path / "results" / "report" / "index.html"
    render_report(ReportInputs(config=config, templates=TEMPLATES, paper=PAPER, out=out, **files))
    figures = section(out.read_text(), "figures")
    assert 'id="figure3"' in figures and figures.count("<img ") == 4
    unnamed = tiny_png(tmp_path / "figure1.png")  # the right name, but no identity in the file
    config_file = tmp_path / "config.yaml"
    config_file.write_text("preset: smoke\n")
    arguments = [
        "report",
        "--config",
        str(config_file),
        "--templates",
        str(TEMPLATES),
        "--out",
        str(tmp_path / "r.html"),
    ]
    assert febm_main([*arguments, "--figures", str(unnamed)]) == 2
    error = capsys.readouterr().err.strip()
    assert "does not say which figure it is" in error and "toy_figure" in error and "\n" not in error
