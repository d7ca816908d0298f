import pandas as pd

from colorize.plots import colour_distribution_figure, main


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
    other = tmp_path / "other.csv"
    pd.DataFrame({"x": [1]}).to_csv(other, index=False)
    assert main([str(other), "--out", str(tmp_path / "no.png")]) == 2
    assert "lacks the columns" in capsys.readouterr().err
