import json
import pandas as pd

from colorize.plots import colour_distribution_figure, hue_summary, main


def _per_image(tmp_path):
    table = pd.DataFrame(
        {
            "image": ["a.jpg", "b.jpg", "c.jpg"],
            "colorfulness": [10.0, 20.0, 5.0],
            "real_colorfulness": [30.0, 40.0, 25.0],
            "mean_hue": [70.0, 75.0, float("nan")],
            "real_mean_hue": [200.0, 30.0, 300.0],
        }
    )
    path = tmp_path / "per_image.csv"
    table.to_csv(path, index=False)
    return table, path


def test_figure_reports_the_colourfulness_ratio(tmp_path):
    table, _ = _per_image(tmp_path)
    figure = colour_distribution_figure(table)
    assert "mean ratio 0.37" in figure.axes[0].get_title()


def test_cli_writes_png_and_refuses_a_foreign_table(tmp_path, capsys):
    _, path = _per_image(tmp_path)
    out = tmp_path / "plot.png"
    assert main([str(path), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert set(summary) == {"colorized", "real", "warm_hues_degrees"}
    assert "of images with a mean hue in 60-100 deg" in capsys.readouterr().out
    other = tmp_path / "other.csv"
    pd.DataFrame({"x": [1]}).to_csv(other, index=False)
    assert main([str(other), "--out", str(tmp_path / "no.png")]) == 2
    assert "lacks the columns" in capsys.readouterr().err


def test_hue_summary_counts_warm_mean_hues():
    table = pd.DataFrame({
        "mean_hue": [70.0, 90.0, 95.0, 200.0], "real_mean_hue": [10.0, 80.0, 250.0, 300.0],
        "cast_chroma": [5.0, 7.0, 9.0, 11.0], "real_cast_chroma": [1.0, 2.0, 3.0, 4.0],
    })
    summary = hue_summary(table)
    assert summary["colorized"]["share_warm_mean_hue"] == 0.75 and summary["real"]["share_warm_mean_hue"] == 0.25
    assert summary["colorized"]["median_mean_hue"] == 92.5 and summary["colorized"]["median_cast_chroma"] == 8.0
