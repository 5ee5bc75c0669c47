"""The HTML report: what it holds, how it stays small, and what bad input gets."""

from __future__ import annotations

import re
import subprocess
import sys

from sdf_autodec.shapes.report import ReportConfig, build_report
from sdf_autodec.webpage import CSP, Cell, Page
from tests.factories import completed_folder


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_demo_report_has_every_section_and_fetches_nothing(demo_run):
    demo, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (demo / "report.html").read_text()
    for anchor in ("missing", "run", "qa", "metrics", "pictures", "codes", "slices", "config"):
        assert f'id="{anchor}"' in page, anchor
    assert CSP in page  # the browser itself refuses anything but inline data
    images = _images(page)
    assert len(images) >= 6 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for table in ("qa-table", "metrics-table"):
        assert f'id="{table}"' in page


def test_big_runs_cap_thumbnails_and_full_pictures_but_list_every_shape(tmp_path, trained_run):
    folder, metrics = completed_folder(tmp_path, 40)
    cfg = ReportConfig(run=str(trained_run), completed=str(folder), eval=str(metrics), output=str(tmp_path / "r.html"), thumbnails=5, full_renders=6, thumb_size=32, slices=0)
    cfg.view.size = 48
    result = build_report(cfg)
    page = (tmp_path / "r.html").read_text()
    assert result["shapes"] == 40 and page.count("<tr>") >= 41  # every shape has its row
    table = page[page.index('id="metrics-table"') :]
    table = table[: table.index("</table>")]
    assert len(_images(table)) == 5  # thumbnails capped
    pictures = page[page.index('id="pictures"') : page.index('id="codes"')]
    assert len(_images(pictures)) == 6  # 2 best, 2 worst, 2 random
    assert "Best by Chamfer" in pictures and "Worst by Chamfer" in pictures
    assert 'class="filter"' in page  # the class filter


def test_report_builds_and_says_what_is_missing(tmp_path, trained_run, data_dir):
    folder, metrics = completed_folder(tmp_path, 3, empty=("s001",))
    result = build_report(ReportConfig(run=str(trained_run), completed=str(folder), eval=str(metrics), output=str(tmp_path / "r.html"), slices=0))
    said = " ".join(f"{w}: {y}" for w, y in result["missing"])
    assert "s001" in said and "no triangles" in said
    # ground truth given, but not of these shapes: said per shape
    result = build_report(ReportConfig(run=str(trained_run), data=str(data_dir), completed=str(folder), eval=str(metrics), output=str(tmp_path / "gt.html"), slices=0))
    assert any(w == "s000" and "no ground truth" in y for w, y in result["missing"])
    # a run with nothing else: still a page, and it says what it lacks
    result = build_report(ReportConfig(run=str(trained_run), output=str(tmp_path / "bare.html"), slices=0))
    assert (tmp_path / "bare.html").is_file() and any(w == "shapes" for w, _ in result["missing"])
    # no metrics JSON: said, and the completions still shown
    result = build_report(ReportConfig(run=str(trained_run), completed=str(folder), output=str(tmp_path / "nometrics.html"), slices=0))
    assert any(w == "metrics" for w, _ in result["missing"]) and result["shapes"] == 3


def test_report_command_missing_run_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sdf_autodec.cli.main", "report", f"run={tmp_path / 'nope'}", f"output={tmp_path / 'r.html'}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "run folder not found" in lines[0]
    assert not (tmp_path / "r.html").exists()


def test_report_command_without_metrics_exits_0(tmp_path, trained_run):
    proc = subprocess.run([sys.executable, "-m", "sdf_autodec.cli.main", "report", f"run={trained_run}", f"output={tmp_path / 'r.html'}", "slices=0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "missing: shapes" in proc.stdout and (tmp_path / "r.html").is_file()


def test_page_tables_escape_their_content(tmp_path):
    page = Page("<title>")
    page.table(["a", "b"], [["<script>x</script>", 1.23456789], [Cell("<b>ok</b>", 3), None]], "t", filter_column="a")
    text = page.html()
    assert "<script>x</script>" not in text and "&lt;script&gt;" in text and "<b>ok</b>" in text and ">1.235<" in text
    page.write(tmp_path / "p.html")
    assert (tmp_path / "p.html").read_text() == text
