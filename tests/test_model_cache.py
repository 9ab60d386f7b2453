"""Converted-model caches are keyed by the file's content, not its place."""


def test_model_cache_keys_follow_the_content_not_the_place(tmp_path, monkeypatch):
    from sftkit.modeling.cache import content_digest

    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    one, two = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for p in (one, two):
        p.parent.mkdir()
        p.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    assert content_digest(one) == content_digest(two)  # one cache entry for the same file in two places
    assert len(list((tmp_path / "cache" / "hashes").iterdir())) == 2  # each hashed once
    two.write_bytes(b"GGUF other weights")
    assert content_digest(one) != content_digest(two)
