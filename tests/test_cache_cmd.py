"""sftkit cache info / clean report and remove exactly the cached parts."""

from click.testing import CliRunner

from sftkit.cli import cli, load_plugin_commands


def test_cache_info_and_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path))
    monkeypatch.delenv("SFTKIT_BASE_EVAL_CACHE", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.arrow").write_bytes(b"x" * 4096)
    (tmp_path / "models" / "abc").mkdir(parents=True)
    (tmp_path / "models" / "abc" / "model.safetensors").write_bytes(b"y" * 2048)
    load_plugin_commands()
    runner = CliRunner()
    (tmp_path / "base_eval").mkdir()
    (tmp_path / "base_eval" / "k.json").write_bytes(b"z" * 1024)
    out = " ".join(runner.invoke(cli, ["cache", "info"]).output.split())
    assert "data 4.0 KB" in out and "models 2.0 KB" in out and "base_eval 1.0 KB" in out and "total 7.0 KB" in out
    out = runner.invoke(cli, ["cache", "clean", "data"]).output
    assert "freed 4.0 KB" in out
    assert not (tmp_path / "data").exists() and (tmp_path / "models" / "abc").exists()
    result = runner.invoke(cli, ["cache", "clean", "dat"])
    assert result.exit_code == 2 and "'dat' is not one of" in result.output
    out = runner.invoke(cli, ["cache", "clean"]).output
    assert "freed 3.0 KB" in out and not (tmp_path / "models").exists() and not (tmp_path / "base_eval").exists()
