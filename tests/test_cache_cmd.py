"""sftkit cache info / clean report and remove exactly the cached parts."""

from click.testing import CliRunner

from sftkit.cli import cli, load_plugin_commands


def test_cache_info_and_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.arrow").write_bytes(b"x" * 4096)
    (tmp_path / "models" / "abc").mkdir(parents=True)
    (tmp_path / "models" / "abc" / "model.safetensors").write_bytes(b"y" * 2048)
    load_plugin_commands()
    runner = CliRunner()
    out = runner.invoke(cli, ["cache", "info"]).output
    assert "data       4.0 KB" in out and "models     2.0 KB" in out and "total      6.0 KB" in out
    out = runner.invoke(cli, ["cache", "clean", "data"]).output
    assert "freed 4.0 KB" in out
    assert not (tmp_path / "data").exists() and (tmp_path / "models" / "abc").exists()
    result = runner.invoke(cli, ["cache", "clean", "dat"])
    assert result.exit_code == 2 and "'dat' is not one of" in result.output
    out = runner.invoke(cli, ["cache", "clean"]).output
    assert "freed 2.0 KB" in out and not (tmp_path / "models").exists()
